package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrAddressRejected is wrapped by the errors of [CheckAddr] and by dial
// errors for webhook URLs that resolve to a rejected address.
var ErrAddressRejected = errors.New("webhook address rejected")

// rejectedPrefix is an address range that a webhook must not reach,
// with the reason given in the error.
type rejectedPrefix struct {
	prefix netip.Prefix
	reason string
}

// rejectedPrefixes are the ranges that netip.Addr's methods do not cover.
var rejectedPrefixes = []rejectedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "in the carrier-grade NAT range 100.64.0.0/10"},
	// 192.0.0.192 is the Oracle Cloud metadata address.
	{netip.MustParsePrefix("192.0.0.0/24"), "in the IETF protocol assignments range 192.0.0.0/24"},
	{netip.MustParsePrefix("198.18.0.0/15"), "in the benchmarking range 198.18.0.0/15"},
	{netip.MustParsePrefix("240.0.0.0/4"), "in the reserved range 240.0.0.0/4 (with the broadcast address)"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address (::/96, deprecated)"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local IPv6 address (fec0::/10, deprecated)"},
}

// Prefixes whose addresses embed an IPv4 address that a router or gateway
// reaches: NAT64 (RFC 6052) in the last 32 bits, 6to4 (RFC 3056) in bits 16
// to 47.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// CheckAddr decides whether the notifier may connect to ip. It returns nil
// for a public unicast address and an error wrapping ErrAddressRejected for
// any of these, also in IPv4-mapped IPv6 form (::ffff:a.b.c.d) and inside
// NAT64 and 6to4 addresses:
//   - loopback (127.0.0.0/8, ::1), unless allowLoopback is set;
//   - private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7);
//   - link-local (169.254.0.0/16, fe80::/10), which includes the cloud
//     metadata address 169.254.169.254;
//   - multicast, unspecified (0.0.0.0, ::) and broadcast;
//   - carrier-grade NAT (100.64.0.0/10) and the other special ranges in
//     rejectedPrefixes.
//
// The notifier calls it on every resolved address at dial time, so a host
// name that resolves to an internal address is rejected too.
func CheckAddr(ip netip.Addr, allowLoopback bool) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid IP address", ErrAddressRejected)
	}
	original := ip
	ip = ip.WithZone("").Unmap()

	if reason := rejectReason(ip, allowLoopback); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrAddressRejected, original, reason)
	}
	if ip.Is6() && (nat64Prefix.Contains(ip) || sixToFour.Contains(ip)) {
		inner := embeddedIPv4(ip)
		if reason := rejectReason(inner, allowLoopback); reason != "" {
			return fmt.Errorf("%w: %s embeds %s, which is %s", ErrAddressRejected, original, inner, reason)
		}
	}
	return nil
}

// rejectReason returns why ip is rejected, or "" if it is allowed.
func rejectReason(ip netip.Addr, allowLoopback bool) string {
	switch {
	case ip.IsLoopback():
		if allowLoopback {
			return ""
		}
		return "a loopback address (allowed only with AllowLoopback, for local development)"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (this range includes the cloud metadata address 169.254.169.254)"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, r := range rejectedPrefixes {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address inside a NAT64 or 6to4 address.
func embeddedIPv4(ip netip.Addr) netip.Addr {
	b := ip.As16()
	if sixToFour.Contains(ip) {
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
}

// dialControl returns a net.Dialer ControlContext function that applies
// CheckAddr to the address of each connection just before it is made, after
// name resolution.
func dialControl(allowLoopback bool) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dial address %q on %s: %w", ErrAddressRejected, address, network, err)
		}
		return CheckAddr(ap.Addr(), allowLoopback)
	}
}
