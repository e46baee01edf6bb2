//! The macro that turns one list of `"wire type" => Variant(Payload)` lines into a
//! message enum, its serde form, its TypeScript form and its decoder.
//!
//! Every message type name therefore appears exactly once in the source: the
//! enum, the `TYPES` table, `type_name()` and the decoder's dispatch all come
//! from the same line.

/// Defines a message enum whose variants each wrap one payload struct.
///
/// The generated enum serializes adjacently tagged, `{"type": "...", "payload": {...}}`,
/// and gets:
/// - `TYPES`: every wire type name, in declaration order;
/// - `type_name()`: the wire type name of a value;
/// - `from_type_and_payload()`: decodes a payload for a known type name, or
///   returns `None` for a type name the enum does not know.
///
/// An optional trailing `unknown { Variant(Type) }` block adds a variant that holds
/// messages of types this version does not know (forward compatibility); it is
/// serialized untagged (the wrapped type writes its own `type`) and left out of
/// the TypeScript union.
macro_rules! message_enum {
    (
        $(#[$enum_meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $wire:literal => $variant:ident($payload:ty),
            )+
        }
        $(
            unknown {
                $(#[$unknown_meta:meta])*
                $unknown_variant:ident($unknown_payload:ty)
            }
        )?
    ) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(export_to = "protocol.ts"))]
        #[serde(tag = "type", content = "payload")]
        #[non_exhaustive]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $wire)]
                $variant($payload),
            )+
            $(
                $(#[$unknown_meta])*
                #[serde(untagged)]
                #[cfg_attr(feature = "typescript", ts(skip))]
                $unknown_variant($unknown_payload),
            )?
        }

        impl $name {
            /// Every wire `type` this enum knows, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($wire),+];

            /// The Rust name of each type's payload struct, in the order of [`Self::TYPES`].
            pub const PAYLOAD_TYPES: &'static [&'static str] = &[$(stringify!($payload)),+];

            /// The TypeScript shape of each type's payload, in the order of [`Self::TYPES`].
            #[cfg(feature = "typescript")]
            pub(crate) fn payload_shapes(config: &ts_rs::Config) -> Vec<String> {
                vec![$(<$payload as ts_rs::TS>::inline(config)),+]
            }

            /// The wire `type` of this message, e.g. `"chat:message"`.
            pub fn type_name(&self) -> &str {
                match self {
                    $(Self::$variant(_) => $wire,)+
                    $(Self::$unknown_variant(unknown) => &unknown.type_name,)?
                }
            }

            /// Decodes `payload` as the payload of the message type `type_name`.
            ///
            /// Returns `None` when `type_name` is not one of [`Self::TYPES`].
            pub(crate) fn from_type_and_payload<'de, D>(
                type_name: &str,
                payload: D,
            ) -> Option<Result<Self, D::Error>>
            where
                D: serde::Deserializer<'de>,
            {
                use serde::Deserialize as _;
                Some(match type_name {
                    $($wire => <$payload>::deserialize(payload).map(Self::$variant),)+
                    _ => return None,
                })
            }
        }

        $(
            impl From<$payload> for $name {
                fn from(payload: $payload) -> Self {
                    Self::$variant(payload)
                }
            }
        )+
    };
}

pub(crate) use message_enum;
