/** @module ChildTarget: where the child serving requests listens; a rolling restart moves it to the new child's port. */

import { hostPort } from "./config-values.ts";

export interface ChildTarget {
  readonly hostname: string;
  readonly port: number;
  /** "http://host:port" (an IPv6 address in brackets), what upstream URLs start with. */
  readonly origin: string;
}

export function childTarget(hostname: string, port: number): ChildTarget {
  return { hostname, port, origin: `http://${hostPort(hostname, port)}` };
}
