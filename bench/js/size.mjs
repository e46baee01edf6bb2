// Sizes for `cargo xtask bench` and the size budget of `cargo xtask test`.
//
//   node size.mjs report <request.json>   prints every size as JSON
//   node size.mjs budget <packageDir>     prints the gzip bytes of the Relaywire bundle
//
// The request names the built package, the files to measure as they are (the wasm
// and glue of each size step), and the wasm to embed both ways.
import { readFileSync } from "node:fs";
import { PEERS, bundle, relaywire, sizes, version } from "./bundle.mjs";

const [command, argument] = process.argv.slice(2);

/** What embedding `wasm` into a JS module costs, base64 against the package's ASCII. */
function embeddings(wasm, packageDir) {
  const asBase64 = Buffer.from(`export default "${wasm.toString("base64")}";\n`);
  const shipped = readFileSync(`${packageDir}/relaywire_client_wasm.js`);
  return { bare: sizes(wasm), base64: sizes(asBase64), ascii: sizes(shipped) };
}

if (command === "budget") {
  console.log(sizes(await bundle(relaywire(argument))).gzip);
} else if (command === "report") {
  const request = JSON.parse(readFileSync(argument, "utf8"));
  const bundles = [];
  for (const peer of [relaywire(request.package), ...PEERS]) {
    const code = await bundle(peer);
    bundles.push({
      name: peer.name,
      version: version(peer.name, peer.alias?.relaywire),
      entry: peer.entry,
      ...sizes(code),
    });
  }
  // What Vite and other bundlers that keep UTF-8 ship; the same bytes here, as the
  // package is ASCII, so this only confirms nothing depends on the charset.
  const utf8 = sizes(await bundle(relaywire(request.package), { charset: "utf8" }));
  const files = request.files.map(({ name, path }) => ({ name, ...sizes(readFileSync(path)) }));
  const embedding = embeddings(readFileSync(request.wasm), request.package);
  console.log(JSON.stringify({ bundles, utf8, files, embedding }));
} else {
  console.error("usage: node size.mjs report <request.json> | budget <packageDir>");
  process.exit(2);
}
