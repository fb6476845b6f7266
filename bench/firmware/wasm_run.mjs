// The MicroPython webassembly port (npm @micropython/micropython-webassembly-pyscript, 32-bit) running
// bench/firmware/mp_core.py for bench/firmware/bench_ports.py:
//   node wasm_run.mjs <node_modules dir> <heap bytes> <firmware build dir> <mp_core.py> <params.json>
// The firmware's .mpy files, the params and the files they name are copied into the port's in-memory
// filesystem (/fw, /work); the script's output goes to stdout.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [modules, heap, fwDir, script, paramsFile] = process.argv.slice(2);
const entry = path.join(modules, "@micropython", "micropython-webassembly-pyscript", "micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(entry).href);
const mp = await loadMicroPython({ heapsize: Number(heap), stdout: (t) => console.log(t), stderr: (t) => console.error(t) });
const params = JSON.parse(fs.readFileSync(paramsFile, "utf8"));
mp.FS.mkdir("/fw");
for (const f of fs.readdirSync(fwDir)) {
  if (f.endsWith(".mpy")) mp.FS.writeFile("/fw/" + f, fs.readFileSync(path.join(fwDir, f)));
}
mp.FS.mkdir("/work");
for (const key of ["config", "acks"]) {
  mp.FS.writeFile("/work/" + key, fs.readFileSync(params[key]));
  params[key] = "/work/" + key;
}
params.fw = "/fw";
params.work = "/work";
mp.FS.writeFile("/work/params.json", JSON.stringify(params));
try {
  mp.runPython(fs.readFileSync(script, "utf8"));  // defines the steps below
  // One call each: this port frees only the garbage of calls that have returned (see mp_core.py).
  for (const step of ['mark("first")', "firmware()", 'mark("code")', "boot()"]) mp.runPython(step);
  mp.runPython("start()");
  const press = mp.globals.get("press");
  const live = mp.globals.get("live");
  for (let i = 0; i < params.presses; i++) {
    press(i);
    if (i % 100 === 0) live();
  }
  mp.runPython("report()");
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
