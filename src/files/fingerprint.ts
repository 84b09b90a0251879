/**
 * @module Which file names carry a digest of their content (fingerprinted assets), and so can
 * be cached for a year: a changed file gets a new name. The rule (docs/static-files.md):
 *   - a hex digest of 7 to 128 characters, with at least one digit and one letter, after a
 *     "-" and before a "." (Sprockets `application-<64 hex>.css`, Propshaft `application-1a2b3c4d.css`) or as
 *     a whole "."-separated part after the first (webpack `main.3f2a9c1b7e.js`);
 *   - 8 characters of [A-Za-z0-9_-], with at least one digit and one capital letter, after a
 *     "-" and before a "." (Vite/Rollup `index-B1x2Yz9Q.js`, esbuild `app-LRJRC5TG.js`);
 *   - Propshaft's "already digested" marker: `-<7 to 128 of [A-Za-z0-9_-]>.digested.`.
 * Dates, version numbers and words do not qualify, so a hand-named file is not mistaken for
 * one; the cost is that a bundler hash without a digit or a capital is not recognized (its
 * file is then served without the year-long caching, never wrongly with it).
 */

const HEX_DIGEST = /^(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,128}$/;
const BUNDLER_HASH = /^(?=.*[0-9])(?=.*[A-Z])[\w-]{8}$/;
const DIGESTED = /-[\w-]{7,128}\.digested\./;

/** True when the part of a name before one of its dots ends in a digest. */
function endsInDigest(part: string): boolean {
  const dash = part.lastIndexOf("-");
  if (dash > 0 && HEX_DIGEST.test(part.slice(dash + 1))) return true;
  return part.length > 9 && part[part.length - 9] === "-" && BUNDLER_HASH.test(part.slice(-8));
}

/** True when `fileName` (a base name, no directory) is a fingerprinted asset's. */
export function isFingerprinted(fileName: string): boolean {
  if (DIGESTED.test(fileName)) return true;
  const parts = fileName.split(".");
  // The last part is the extension: a digest comes before it.
  return parts.slice(0, -1).some((part, i) => endsInDigest(part) || (i > 0 && HEX_DIGEST.test(part)));
}
