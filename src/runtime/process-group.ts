/**
 * @module Whether a process group still has a process that has not exited: kill(-pgid, 0)
 * also counts an orphan of the group that has exited and that init has not collected yet
 * (a zombie), which an init that reaps late (a sandbox's, a shell script's as PID 1) keeps
 * for a second or more, or for good.
 */

/**
 * True when /proc lists a process of group `pgid` that is neither a zombie nor dead; false
 * when it lists none; undefined when /proc cannot be listed (not Linux). `list` gives the
 * names in /proc, `readStat` the text of /proc/<pid>/stat (undefined when it is gone).
 */
export async function liveProcessInGroup(
  pgid: number,
  list: () => Iterable<string>,
  readStat: (pid: string) => Promise<string | undefined>,
): Promise<boolean | undefined> {
  let pids: number[];
  try {
    pids = Array.from(list(), Number).filter((pid) => Number.isInteger(pid));
  } catch {
    return undefined;
  }
  if (pids.length === 0) return undefined; // no /proc: it would list this process at least
  // Newest first: the group's processes are most likely among them, and a live one ends the
  // look early, each 50 ms of a stop's wait.
  pids.sort((a, b) => b - a);
  for (const pid of pids) {
    const stat = await readStat(String(pid));
    if (stat === undefined) continue;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
  }
  return false;
}
