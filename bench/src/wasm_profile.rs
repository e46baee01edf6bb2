//! What the shipped WebAssembly is made of: the code section's function bodies summed by
//! where they come from, read from the name section of a build that kept its names
//! (wasm-opt `-g`) but is otherwise the shipped one.

use std::collections::BTreeMap;

use serde::Serialize;

/// Bytes of one origin.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Share {
    /// Where the code comes from.
    pub(crate) origin: &'static str,
    /// Function body bytes.
    pub(crate) bytes: u64,
    /// How many functions.
    pub(crate) functions: u64,
    /// The largest function of this origin.
    pub(crate) largest: String,
    /// Its body bytes.
    pub(crate) largest_bytes: u64,
}

/// A module's composition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Profile {
    /// Code by origin, largest first.
    pub(crate) code: Vec<Share>,
    /// All function bodies.
    pub(crate) code_bytes: u64,
    /// The data section (string constants, tables).
    pub(crate) data_bytes: u64,
    /// Everything else but custom sections (types, imports, exports, element segments).
    pub(crate) other_bytes: u64,
}

/// The origins, matched in order on the demangled name without crate hashes.
const ORIGINS: &[(&str, &[&str])] = &[
    (
        "client core: the connection state machine",
        &["relaywire_client::core"],
    ),
    (
        "browser driver and the exported API",
        &[
            "relaywire_client::browser",
            "relaywireclient_",
            "relaywire_client::",
        ],
    ),
    ("protocol constants", &["relaywire_protocol"]),
    (
        "wasm-bindgen and js-sys glue",
        &[
            "wasm_bindgen",
            "js_sys",
            "__wbg",
            "__wbindgen",
            "__externref",
            "externref shim",
        ],
    ),
    (
        "allocator (Talc)",
        &[
            "talc::",
            "dlmalloc",
            "__rust_alloc",
            "__rust_dealloc",
            "__rust_realloc",
            "__rdl_",
            "__rg_",
        ],
    ),
    (
        "formatting and panics",
        &[
            "core::fmt",
            "core::panicking",
            "std::panicking",
            "core::panic",
            "std::panic",
            "core::result::unwrap_failed",
            "core::option::expect",
            "core::slice::index",
            "core::str::count",
            "alloc::fmt",
            "std::alloc",
            "core::str::slice_error",
        ],
    ),
    (
        "collections: Vec, VecDeque, String, Rc",
        &["alloc::", "core::ptr::drop_in_place"],
    ),
    (
        "other core and std",
        &["core::", "std::", "memcpy", "memset", "memmove", "memcmp"],
    ),
];

/// Sections and names failed to parse.
#[derive(Debug)]
pub(crate) struct MalformedWasm(pub(crate) &'static str);

impl std::fmt::Display for MalformedWasm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed wasm: {}", self.0)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, MalformedWasm> {
        let byte = *self.bytes.get(self.at).ok_or(MalformedWasm("truncated"))?;
        self.at += 1;
        Ok(byte)
    }

    fn leb(&mut self) -> Result<u64, MalformedWasm> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MalformedWasm("LEB128 too long"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], MalformedWasm> {
        let len = usize::try_from(len).map_err(|_| MalformedWasm("length"))?;
        let end = self.at.checked_add(len).ok_or(MalformedWasm("length"))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(MalformedWasm("truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn name(&mut self) -> Result<&'a str, MalformedWasm> {
        let len = self.leb()?;
        std::str::from_utf8(self.take(len)?).map_err(|_| MalformedWasm("a name is not UTF-8"))
    }
}

/// How many functions the import section brings in (they come first in the index space).
fn imported_functions(section: &[u8]) -> Result<u64, MalformedWasm> {
    let mut reader = Reader::new(section);
    let mut functions = 0;
    for _ in 0..reader.leb()? {
        reader.name()?;
        reader.name()?;
        match reader.byte()? {
            0x00 => {
                reader.leb()?;
                functions += 1;
            }
            0x01 => {
                reader.byte()?;
                limits(&mut reader)?;
            }
            0x02 => limits(&mut reader)?,
            0x03 => {
                reader.byte()?;
                reader.byte()?;
            }
            0x04 => {
                reader.byte()?;
                reader.leb()?;
            }
            _ => return Err(MalformedWasm("unknown import kind")),
        }
    }
    Ok(functions)
}

fn limits(reader: &mut Reader<'_>) -> Result<(), MalformedWasm> {
    let flags = reader.byte()?;
    reader.leb()?;
    if flags & 1 == 1 {
        reader.leb()?;
    }
    Ok(())
}

fn function_names(section: &[u8]) -> Result<BTreeMap<u64, &str>, MalformedWasm> {
    let mut reader = Reader::new(section);
    let mut names = BTreeMap::new();
    while !reader.done() {
        let kind = reader.byte()?;
        let len = reader.leb()?;
        let body = reader.take(len)?;
        if kind == 1 {
            let mut sub = Reader::new(body);
            for _ in 0..sub.leb()? {
                let index = sub.leb()?;
                names.insert(index, sub.name()?);
            }
        }
    }
    Ok(names)
}

/// `<core[1a2b]::fmt::Formatter>::pad` becomes `core::fmt::Formatter>::pad`.
fn plain(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim_start_matches('<').to_owned()
}

fn origin(name: &str) -> &'static str {
    let name = plain(name);
    ORIGINS
        .iter()
        .find(|(_, prefixes)| {
            prefixes
                .iter()
                .any(|p| name.starts_with(p) || (p.contains(' ') && name.contains(p)))
        })
        .map_or("other", |(origin, _)| origin)
}

/// Profiles a module that kept its names.
pub(crate) fn profile(wasm: &[u8]) -> Result<Profile, MalformedWasm> {
    if wasm.get(..4) != Some(b"\0asm") {
        return Err(MalformedWasm("no wasm header"));
    }
    let mut reader = Reader::new(wasm.get(8..).ok_or(MalformedWasm("truncated"))?);
    let (mut imports, mut bodies, mut names) = (0, Vec::new(), BTreeMap::new());
    let (mut data_bytes, mut other_bytes) = (0, 0);
    while !reader.done() {
        let id = reader.byte()?;
        let len = reader.leb()?;
        let section = reader.take(len)?;
        match id {
            0 => {
                let mut custom = Reader::new(section);
                if custom.name()? == "name" {
                    names = function_names(&section[custom.at..])?;
                }
            }
            2 => {
                imports = imported_functions(section)?;
                other_bytes += len;
            }
            10 => {
                let mut code = Reader::new(section);
                for _ in 0..code.leb()? {
                    let size = code.leb()?;
                    code.take(size)?;
                    bodies.push(size);
                }
            }
            11 => data_bytes += len,
            _ => other_bytes += len,
        }
    }
    let mut shares: BTreeMap<&'static str, Share> = BTreeMap::new();
    for (index, &size) in bodies.iter().enumerate() {
        let name = names
            .get(&(imports + index as u64))
            .copied()
            .unwrap_or("(unnamed)");
        let origin = origin(name);
        let share = shares.entry(origin).or_insert_with(|| Share {
            origin,
            bytes: 0,
            functions: 0,
            largest: String::new(),
            largest_bytes: 0,
        });
        if size > share.largest_bytes {
            share.largest = name.to_owned();
            share.largest_bytes = size;
        }
        share.bytes += size;
        share.functions += 1;
    }
    let mut code: Vec<Share> = shares.into_values().collect();
    code.sort_by_key(|share| std::cmp::Reverse(share.bytes));
    Ok(Profile {
        code_bytes: bodies.iter().sum(),
        code,
        data_bytes,
        other_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::{origin, plain, profile};

    /// A module with one imported and two defined functions, named.
    fn module() -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        // type section: one `() -> ()`.
        wasm.extend([1, 4, 1, 0x60, 0, 0]);
        // import section: env.f, a function of type 0.
        wasm.extend([2, 9, 1, 3, b'e', b'n', b'v', 1, b'f', 0, 0]);
        // function section: two functions of type 0.
        wasm.extend([3, 3, 2, 0, 0]);
        // code section: bodies of 2 and 4 bytes.
        wasm.extend([10, 9, 2, 2, 0, 0x0b, 4, 0, 1, 1, 0x0b]);
        // name section with function names 1 and 2.
        let names: &[(u8, &str)] = &[
            (1, "relaywire_client::core::Core::handle"),
            (2, "talc::base::Talc::allocate"),
        ];
        let mut map = vec![names.len() as u8];
        for (index, name) in names {
            map.push(*index);
            map.push(name.len() as u8);
            map.extend(name.bytes());
        }
        let mut custom = vec![4];
        custom.extend(b"name");
        custom.push(1);
        custom.push(map.len() as u8);
        custom.extend(map);
        wasm.push(0);
        wasm.push(custom.len() as u8);
        wasm.extend(custom);
        wasm
    }

    #[test]
    fn function_bodies_are_summed_by_origin() {
        let profile = profile(&module()).expect("a valid module");
        assert_eq!(profile.code_bytes, 6);
        let origins: Vec<(&str, u64)> = profile.code.iter().map(|s| (s.origin, s.bytes)).collect();
        assert_eq!(
            origins,
            [
                ("allocator (Talc)", 4),
                ("client core: the connection state machine", 2)
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(profile(b"not wasm").is_err());
        let mut truncated = module();
        truncated.truncate(20);
        assert!(profile(&truncated).is_err());
    }

    #[test]
    fn names_are_read_without_crate_hashes() {
        assert_eq!(
            plain("<core[c593]::fmt::Formatter>::pad"),
            "core::fmt::Formatter>::pad"
        );
        assert_eq!(
            origin("<core[c593]::fmt::Formatter>::pad"),
            "formatting and panics"
        );
        assert_eq!(
            origin("relaywireclient_new externref shim"),
            "browser driver and the exported API"
        );
        assert_eq!(
            origin("wasm_bindgen::convert::closures::invoke"),
            "wasm-bindgen and js-sys glue"
        );
        assert_eq!(origin("mystery"), "other");
    }
}
