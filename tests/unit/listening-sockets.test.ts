/** groupListeningAddresses: where a process group listens, from /proc (tests/e2e/supervision.test.ts reads the real one). */

import { expect, test } from "bun:test";
import { groupListeningAddresses, localAddress, type ProcReader } from "../../src/runtime/listening-sockets.ts";

test("/proc/net addresses read as host:port, IPv6 in brackets, mapped IPv4 as IPv4", () => {
  expect(localAddress("0100007F:0BB8")).toBe("127.0.0.1:3000");
  expect(localAddress("00000000:1F90")).toBe("0.0.0.0:8080");
  expect(localAddress("00000000000000000000000001000000:0BB8")).toBe("[::1]:3000");
  expect(localAddress("00000000000000000000000000000000:0050")).toBe("[::]:80");
  expect(localAddress("0000000000000000FFFF00000100007F:0BB8")).toBe("127.0.0.1:3000");
  expect(localAddress("B80D0120000000000000000001000000:0001")).toBe("[2001:db8::1]:1");
});

test("only the listening sockets of the group's processes count", async () => {
  const files: Record<string, string> = {
    "/proc/10/stat": "10 (sh) S 1 10 10 0",
    "/proc/11/stat": "11 (ruby (puma)) S 10 10 10 0",
    "/proc/12/stat": "12 (other) S 1 12 12 0",
    "/proc/net/tcp": [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0",
      "   1: 0100007F:0BB9 0100007F:9000 01 00000000:00000000 00:00000000 00000000     0        0 112 1 0",
      "   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 121 1 0",
    ].join("\n"),
  };
  const fds: Record<string, Record<string, string>> = {
    "/proc/10/fd": { "0": "/dev/null" },
    "/proc/11/fd": { "5": "socket:[111]", "6": "socket:[112]" },
    "/proc/12/fd": { "3": "socket:[121]" },
  };
  const proc: ProcReader = {
    list: () => ["10", "11", "12", "self", "net"],
    readText: (path) => Promise.resolve(files[path]),
    listDir: (path) => Object.keys(fds[path] ?? {}),
    socketInode: (path) => Promise.resolve(/^socket:\[(\d+)\]$/.exec(fds[path.slice(0, path.lastIndexOf("/"))]?.[path.slice(path.lastIndexOf("/") + 1)] ?? "")?.[1]),
  };
  expect(await groupListeningAddresses(10, proc)).toEqual(["127.0.0.1:3000"]);
  expect(await groupListeningAddresses(99, proc)).toEqual([]);
});
