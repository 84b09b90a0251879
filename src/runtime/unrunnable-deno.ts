/** @module refuseUnrunnable: Deno's spawn refuses what Bun's (posix_spawn) refuses, a file execve(2) cannot run. */

import { isElf } from "../spawn-failure.ts";

/** What a file's first bytes make it for execve(2): "#!" script, "elf" program, "other", or undefined when unreadable. */
function execFormatOf(path: string): "#!" | "elf" | "other" | undefined {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path);
    const head = new Uint8Array(4);
    const got = file.readSync(head) ?? 0; // a regular file's first bytes come in one read
    if (got >= 2 && head[0] === 0x23 && head[1] === 0x21) return "#!";
    return got === 4 && isElf(head) ? "elf" : "other";
  } catch {
    return undefined;
  } finally {
    file?.close();
  }
}

/** True when binfmt_misc lists interpreters the kernel runs files of other formats with (a jar, a Windows program). */
function otherFormatsRegistered(): boolean {
  try {
    for (const entry of Deno.readDirSync("/proc/sys/fs/binfmt_misc")) if (entry.name !== "register" && entry.name !== "status") return true;
  } catch {
    // Not mounted: nothing visible is registered.
  }
  return false;
}

/**
 * Refuses, with ENOEXEC as Bun's spawn (posix_spawn) does, an executable file that is neither
 * a #! script nor an ELF program (a script without a #! line, an empty file): Deno spawns
 * through execvp, which runs such a file with /bin/sh, so it ran from source and was refused
 * by the binary. An ELF program for another machine still goes to Deno's spawn (a system
 * with qemu-user can run it; execvp's shell then fails on one that it cannot).
 */
export function refuseUnrunnable(program: string, env: Record<string, string>, cwd: string | undefined): void {
  const dirs = program.includes("/") ? [""] : (env.PATH ?? "").split(":").map((dir) => `${dir === "" ? "." : dir}/`);
  for (const dir of dirs) {
    let path = `${dir}${program}`;
    if (cwd !== undefined && !path.startsWith("/")) path = `${cwd}/${path}`;
    try {
      const stat = Deno.statSync(path);
      if (!stat.isFile || ((stat.mode ?? 0o111) & 0o111) === 0) continue; // execvp goes on searching; spawn says why
    } catch {
      continue;
    }
    if (execFormatOf(path) !== "other" || otherFormatsRegistered()) return;
    throw Object.assign(new Error(`ENOEXEC: exec format error, spawn '${program}'`), { code: "ENOEXEC" });
  }
}
