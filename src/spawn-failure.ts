/**
 * @module Why a program could not be started, in the same words on both runtimes (Bun says
 * "Executable not found in $PATH", Deno "entity not found"; Bun "ENOEXEC: unknown error").
 * execve(2) says ENOENT also when the interpreter the file names is missing, the one on its
 * #! line (a script with Windows line endings names "/bin/sh\r") or, for a dynamically linked
 * program, its ELF interpreter (the C library's loader, missing from a FROM scratch image or
 * an Alpine system for a glibc build). The runtimes' messages then name only the program.
 */

import { readErrorCode } from "./read-errors.ts";
import type { Runtime } from "./runtime/types.ts";

/** What is read of the program: a #! line, or an ELF header and its program headers. */
const HEAD_BYTES = 4096;
const PT_INTERP = 3;

type Files = Pick<Runtime, "openFile" | "realPath" | "statFile">;

/**
 * Why the spawn of `program` failed (`error`, the runtime's), in the same words on both
 * runtimes: what is missing, or what the file found is instead of a program, and what to do.
 */
export async function spawnFailureReason(program: string, error: unknown, pathVariable: string | undefined, files: Files): Promise<string> {
  const runtimeMessage = error instanceof Error ? error.message : String(error);
  try {
    const code = readErrorCode(error);
    if (isNotFound(error)) {
      if (!program.includes("/") && findProgram(program, pathVariable, files) === undefined) {
        const here = (await files.statFile(program)) !== undefined ? `; a file of that name is in the working directory: name it with its path, ./${program}` : "";
        return `${JSON.stringify(program)} is not found in any directory of PATH (${pathVariable ?? "unset"})${here}`;
      }
      const missing = await missingInterpreter(program, pathVariable, files);
      return missing === undefined ? (program.includes("/") ? "no such file or directory" : runtimeMessage) : `no such file or directory; ${missing}`;
    }
    const path = findProgram(program, pathVariable, files);
    if (code === "EACCES" && path !== undefined) {
      const stat = await files.statFile(path);
      if (stat === undefined) {
        return `permission denied: ${path} is ${files.realPath(`${path}/.`) === undefined ? "not a regular file" : "a directory"}, not a program`;
      }
      if (stat.mode !== undefined && (stat.mode & 0o111) === 0) return `permission denied: ${path} is not executable (chmod +x ${path})`;
    }
    if (code === "ENOEXEC") {
      const head = path === undefined ? undefined : await readHead(path, files);
      if (head !== undefined && isElf(head)) {
        return `${path} is a program built for another kind of machine (its ELF header names another architecture or word size than this system's): build or download it for this one`;
      }
      return `${path ?? program} is neither a program for this system nor a script with a #! line (begin it with one, such as #!/bin/sh)`;
    }
  } catch {
    // Nothing more can be said than the runtime's message.
  }
  return runtimeMessage;
}

/** True for an error of a spawn that execve(2) refused with ENOENT (Bun's code, Deno's NotFound). */
export function isNotFound(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return readErrorCode(error) === "ENOENT" || error.name === "NotFound" || /\(os error 2\)/.test(error.message);
}

/**
 * For a spawn of `program` that failed with ENOENT: what is missing when the program itself
 * exists, or undefined when it does not (or nothing more can be said).
 */
export async function missingInterpreter(program: string, pathVariable: string | undefined, files: Files): Promise<string | undefined> {
  try {
    const path = findProgram(program, pathVariable, files);
    if (path === undefined) return undefined;
    const head = await readHead(path, files);
    if (head === undefined) return undefined;
    const script = shebangInterpreter(head);
    if (script !== undefined) {
      if (files.realPath(script) !== undefined) return undefined;
      const windows = script.endsWith("\r") ? " (the script has Windows line endings: remove the \\r)" : "";
      return `${path} exists, but the interpreter its #! line names, ${JSON.stringify(script)}, does not${windows}`;
    }
    const loader = elfInterpreter(head);
    if (loader === undefined || files.realPath(loader) !== undefined) return undefined;
    return `${path} exists, but the dynamic loader it needs, ${JSON.stringify(loader)} (its ELF interpreter), does not: ` +
      `it was built for another C library (glibc, musl) or needs one the system or image lacks; link it statically or build it for this one`;
  } catch {
    return undefined;
  }
}

/** The file `program` names: a path (with a /) as it is, else the first match on PATH. */
function findProgram(program: string, pathVariable: string | undefined, files: Files): string | undefined {
  if (program.includes("/")) return files.realPath(program) === undefined ? undefined : program;
  for (const dir of (pathVariable ?? "").split(":")) {
    const candidate = `${dir === "" ? "." : dir}/${program}`;
    if (files.realPath(candidate) !== undefined) return candidate;
  }
  return undefined;
}

async function readHead(path: string, files: Files): Promise<Uint8Array | undefined> {
  const file = await files.openFile(path);
  if (typeof file === "string") return undefined;
  if (file.size === 0) {
    file.close();
    return undefined;
  }
  const response = file.response(0, Math.min(file.size, HEAD_BYTES) - 1, {});
  return new Uint8Array(await response.arrayBuffer());
}

/** The interpreter of a #! line, as the kernel takes it: up to the first space, tab or newline (a \r included). */
export function shebangInterpreter(head: Uint8Array): string | undefined {
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  let start = 2;
  while (head[start] === 0x20 || head[start] === 0x09) start++;
  let end = start;
  while (end < head.length && head[end] !== 0x20 && head[end] !== 0x09 && head[end] !== 0x0a) end++;
  return end > start ? new TextDecoder().decode(head.subarray(start, end)) : undefined;
}

/** True when `head` begins with the ELF magic number (a program or shared library). */
export function isElf(head: Uint8Array): boolean {
  return head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** The PT_INTERP path of an ELF file whose program headers and interpreter lie in `head`. */
export function elfInterpreter(head: Uint8Array): string | undefined {
  if (head.length < 52 || !isElf(head)) return undefined;
  const wide = head[4] === 2;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const little = head[5] === 1;
  const word = (at: number) => (wide ? Number(view.getBigUint64(at, little)) : view.getUint32(at, little));
  const phoff = word(wide ? 0x20 : 0x1c);
  const phentsize = view.getUint16(wide ? 0x36 : 0x2a, little);
  const phnum = view.getUint16(wide ? 0x38 : 0x2c, little);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + phentsize > head.length) return undefined;
    if (view.getUint32(at, little) !== PT_INTERP) continue;
    const offset = word(at + (wide ? 8 : 4));
    const size = word(at + (wide ? 32 : 16));
    if (offset + size > head.length || size === 0) return undefined;
    const bytes = head.subarray(offset, offset + size);
    const nul = bytes.indexOf(0);
    return new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul));
  }
  return undefined;
}
