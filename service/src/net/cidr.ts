import ipaddr from "ipaddr.js";

// CIDRs are validated strictly and stored canonical. Only dotted four-part decimal IPv4 is
// accepted: `127.1`, `0x7f.0.0.1` and octal-looking `010.0.0.1` are ambiguous across parsers.

export type CidrResult = { ok: true; cidr: string } | { ok: false; problem: string };

export function canonicalCidr(input: string): CidrResult {
  const text = input.trim();
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const lenText = slash === -1 ? undefined : text.slice(slash + 1);
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(addrText)) {
    addr = ipaddr.IPv4.parse(addrText);
  } else if (!addrText.includes("%") && ipaddr.IPv6.isValid(addrText)) {
    addr = ipaddr.IPv6.parse(addrText);
  } else {
    return { ok: false, problem: `"${input}" is not an IPv4 address in dotted decimal or an IPv6 address` };
  }
  const max = addr.kind() === "ipv4" ? 32 : 128;
  if (lenText !== undefined && !/^\d{1,3}$/.test(lenText)) {
    return { ok: false, problem: `"${input}" has an invalid prefix length` };
  }
  let len = lenText === undefined ? max : Number(lenText);
  if (len > max) return { ok: false, problem: `"${input}": the prefix length must be at most ${max}` };
  // A mapped IPv6 range is the IPv4 range it stands for (peers are matched as IPv4 too).
  if (addr instanceof ipaddr.IPv6 && addr.isIPv4MappedAddress() && len >= 96) {
    addr = addr.toIPv4Address();
    len -= 96;
  }
  const network =
    addr instanceof ipaddr.IPv4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${len}`);
  if (network.toString() !== addr.toString()) {
    return {
      ok: false,
      problem: `"${input}" has host bits set; did you mean ${network.toString()}/${len}?`,
    };
  }
  return { ok: true, cidr: `${network.toString()}/${len}` };
}
