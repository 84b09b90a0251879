/** @module Whether sluice's stdout and stderr are one file, pipe or socket (`2>&1`), from Linux's /proc/self/fdinfo. */

/**
 * True when two fdinfo texts (/proc/self/fdinfo/<fd>) name the same object: the same `ino`
 * on the same `mnt_id`. False when either lacks them (kernels before 5.14 print no `ino`;
 * other systems have no /proc): the streams are then taken as separate, as before.
 */
export function sameObject(fdinfo1: string, fdinfo2: string): boolean {
  const identity = (text: string): string | undefined => {
    const mount = /^mnt_id:\s*(\d+)$/m.exec(text)?.[1];
    const inode = /^ino:\s*(\d+)$/m.exec(text)?.[1];
    return mount === undefined || inode === undefined ? undefined : `${mount}:${inode}`;
  };
  const first = identity(fdinfo1);
  return first !== undefined && first === identity(fdinfo2);
}
