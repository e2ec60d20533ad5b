// Runs a .tflite model in LiteRT.js (the official LiteRT runtime built to
// WebAssembly, CPU/XNNPACK) under node, with no network access:
//
//   node run.mjs MODEL DIR
//
// DIR holds one directory per case, case0, case1, ...; in each,
// input<i>.bin holds the raw little-endian bytes of model input i, and the
// outputs are written raw to output<i>.bin. The package
// targets browsers; the shims below give its loader what it expects
// (importScripts, require, __dirname) and hand it the .wasm bytes, so
// nothing is fetched.
import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {fileURLToPath} from 'node:url';
import vm from 'node:vm';

const wasmDir = new URL('./node_modules/@litertjs/core/wasm/', import.meta.url);
globalThis.self = globalThis;
globalThis.require = createRequire(import.meta.url);
globalThis.__dirname = fileURLToPath(wasmDir);
globalThis.importScripts = (url) => {
  const path = fileURLToPath(url);
  vm.runInThisContext(readFileSync(path, 'utf8'), {filename: path});
  globalThis.Module = {wasmBinary: readFileSync(path.replace(/\.js$/, '.wasm'))};
};
// Keep stdout for results; LiteRT logs to the console.
const log = console.log;
console.log = console.info = console.warn = console.error = () => {};

const {loadLiteRt, loadAndCompile, Tensor} = await import('@litertjs/core');
const [modelPath, dir] = process.argv.slice(2);
await loadLiteRt(wasmDir.href);
const model = await loadAndCompile(new Uint8Array(readFileSync(modelPath)), {accelerator: 'wasm'});
const arrays = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array};
let cases = 0;
for (; existsSync(`${dir}/case${cases}`); cases++) {
  const c = `${dir}/case${cases}`;
  const inputs = model.getInputDetails().map((d, i) => {
    const b = readFileSync(`${c}/input${i}.bin`);
    const T = arrays[d.dtype];
    const a = new T(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    return new Tensor(a, Array.from(d.shape));
  });
  const outputs = await model.run(inputs);
  outputs.forEach((t, i) => {
    const a = t.toTypedArray();
    writeFileSync(`${c}/output${i}.bin`, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    t.delete();
  });
  inputs.forEach((t) => t.delete());
}
log(JSON.stringify({cases}));
