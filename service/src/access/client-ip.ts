import ipaddr from "ipaddr.js";
import { canonicalCidr } from "../net/cidr";

// Spec §2: the client is the TCP peer; X-Forwarded-For is believed only from trusted proxies,
// and then the right-most untrusted hop is the client. Nothing here throws.

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
export type ParsedCidr = [Addr, number];

/** Parses an address, matching IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4. */
export function parseIp(text: string | undefined | null): Addr | undefined {
  if (!text) return undefined;
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  if (ipaddr.IPv4.isValidFourPartDecimal(t)) return ipaddr.IPv4.parse(t);
  if (t.includes("%") || !ipaddr.IPv6.isValid(t)) return undefined;
  const v6 = ipaddr.IPv6.parse(t);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/** Parses canonical CIDRs (as stored); invalid entries are dropped, never thrown. */
export function parseCidrs(list: readonly string[]): ParsedCidr[] {
  const out: ParsedCidr[] = [];
  for (const c of list) {
    const r = canonicalCidr(c);
    if (!r.ok) continue;
    const [addr, len] = ipaddr.parseCIDR(r.cidr);
    out.push([addr, len]);
  }
  return out;
}

export function ipInCidrs(ip: Addr | undefined, cidrs: readonly ParsedCidr[]): boolean {
  if (!ip) return false;
  return cidrs.some(([net, len]) => {
    if (ip instanceof ipaddr.IPv4 && net instanceof ipaddr.IPv4) return ip.match(net, len);
    if (ip instanceof ipaddr.IPv6 && net instanceof ipaddr.IPv6) return ip.match(net, len);
    return false;
  });
}

export interface ClientAddress {
  /** The TCP peer, as seen on the socket (canonical text). */
  peer: string | undefined;
  /** The client the decision is about; undefined when it cannot be known (fails any allowlist). */
  client: Addr | undefined;
}

export function resolveClientIp(
  peerText: string | undefined,
  forwardedFor: string | undefined,
  trustedProxies: readonly ParsedCidr[],
): ClientAddress {
  const peer = parseIp(peerText);
  const result = { peer: peer?.toString() ?? peerText };
  if (!peer || !forwardedFor || !ipInCidrs(peer, trustedProxies)) return { ...result, client: peer };
  const hops = forwardedFor
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  let client: Addr | undefined = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseIp(hops[i]);
    // An unparsable hop means the chain cannot be trusted past this point.
    if (!hop) return { ...result, client: undefined };
    client = hop;
    if (!ipInCidrs(hop, trustedProxies)) break;
  }
  return { ...result, client };
}

/** The unit failed authentications are budgeted by: the address, or its /64 for IPv6. */
export function authBudgetKey(addr: Addr | undefined): string | undefined {
  if (!addr) return undefined;
  if (addr instanceof ipaddr.IPv4) return addr.toString();
  return `${addr.parts
    .slice(0, 4)
    .map((p) => p.toString(16))
    .join(":")}::/64`;
}
