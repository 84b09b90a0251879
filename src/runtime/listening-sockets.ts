/**
 * @module Where a process group listens for TCP connections, from /proc: the sockets its
 * processes hold (/proc/<pid>/fd links "socket:[inode]") that /proc/net/tcp and tcp6 list in
 * the LISTEN state (a descriptor's stat follows its link to the socket, whose inode it gives). For the message of a child that never became ready: an app that ignores
 * PORT listens somewhere else, and saying where is the fix.
 */

/** What is read of /proc; each returns undefined (or nothing) for what is gone or unreadable. */
export interface ProcReader {
  /** The names in /proc. */
  list(): Iterable<string>;
  /** The text of a file (/proc/<pid>/stat, /proc/net/tcp). */
  readText(path: string): Promise<string | undefined>;
  /** The names in a directory (/proc/<pid>/fd). */
  listDir(path: string): Iterable<string>;
  /** The inode of the socket a /proc/<pid>/fd/<n> link leads to; undefined for another kind of file. */
  socketInode(path: string): Promise<string | undefined>;
}

const LISTEN = "0A";

/** The addresses (host:port, IPv6 in brackets) group `pgid` listens on, sorted; empty when none or /proc cannot be read. */
export async function groupListeningAddresses(pgid: number, proc: ProcReader): Promise<string[]> {
  const inodes = new Set<string>();
  let pids: string[];
  try {
    pids = Array.from(proc.list()).filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  for (const pid of pids) {
    const stat = await proc.readText(`/proc/${pid}/stat`);
    if (stat === undefined) continue;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const pgrp = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3)[2];
    if (Number(pgrp) !== pgid) continue;
    let fds: string[];
    try {
      fds = Array.from(proc.listDir(`/proc/${pid}/fd`));
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      const inode = await proc.socketInode(`/proc/${pid}/fd/${fd}`);
      if (inode !== undefined) inodes.add(inode);
    }
  }
  if (inodes.size === 0) return [];
  const addresses = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of ((await proc.readText(table)) ?? "").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== LISTEN || !inodes.has(fields[9]!)) continue;
      const address = localAddress(fields[1]!);
      if (address !== undefined) addresses.add(address);
    }
  }
  return [...addresses].sort();
}

/** "0100007F:0BB8" as "127.0.0.1:3000"; a 32-digit (IPv6) address as "[::1]:3000". */
export function localAddress(field: string): string | undefined {
  const [hex, portHex] = field.split(":");
  if (hex === undefined || portHex === undefined) return undefined;
  const port = parseInt(portHex, 16);
  // Each 32-bit word is in the host's byte order: little-endian on every target sluice ships for.
  const words = hex.match(/.{8}/g)?.map((word) => word.match(/../g)!.reverse().map((byte) => parseInt(byte, 16)));
  if (words === undefined) return undefined;
  const bytes = words.flat();
  if (bytes.length === 4) return `${bytes.join(".")}:${port}`;
  if (bytes.length !== 16) return undefined;
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `${bytes.slice(12).join(".")}:${port}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
  // The longest run of zero groups (two or more) as "::".
  let [start, length] = [-1, 0];
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > length && j - i >= 2) [start, length] = [i, j - i];
    i = j > i ? j - 1 : i;
  }
  const text = start < 0 ? groups.join(":") : `${groups.slice(0, start).join(":")}::${groups.slice(start + length).join(":")}`;
  return `[${text}]:${port}`;
}
