package notifier

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		ip            string
		allowLoopback bool
		rejected      bool
		wantMsg       string
	}{
		// Public unicast addresses pass.
		{ip: "93.184.215.14"},
		{ip: "8.8.8.8"},
		{ip: "2606:4700:4700::1111"},
		{ip: "::ffff:93.184.215.14"},
		{ip: "64:ff9b::808:808"},
		{ip: "2002:808:808::1"},

		// Loopback: rejected unless allowed.
		{ip: "127.0.0.1", rejected: true, wantMsg: "loopback"},
		{ip: "127.1.2.3", rejected: true, wantMsg: "loopback"},
		{ip: "::1", rejected: true, wantMsg: "loopback"},
		{ip: "::ffff:127.0.0.1", rejected: true, wantMsg: "loopback"},
		{ip: "127.0.0.1", allowLoopback: true},
		{ip: "::1", allowLoopback: true},
		{ip: "::ffff:127.0.0.1", allowLoopback: true},

		// AllowLoopback permits loopback only.
		{ip: "10.1.2.3", allowLoopback: true, rejected: true, wantMsg: "private"},
		{ip: "169.254.169.254", allowLoopback: true, rejected: true, wantMsg: "link-local"},

		// Private.
		{ip: "10.0.0.1", rejected: true, wantMsg: "private"},
		{ip: "172.16.0.1", rejected: true, wantMsg: "private"},
		{ip: "172.31.255.255", rejected: true, wantMsg: "private"},
		{ip: "192.168.1.1", rejected: true, wantMsg: "private"},
		{ip: "fc00::1", rejected: true, wantMsg: "private"},
		{ip: "fd12:3456::1", rejected: true, wantMsg: "private"},
		{ip: "::ffff:10.0.0.1", rejected: true, wantMsg: "private"},
		{ip: "::ffff:192.168.0.1", rejected: true, wantMsg: "private"},

		// Link-local, with the cloud metadata address.
		{ip: "169.254.169.254", rejected: true, wantMsg: "169.254.169.254"},
		{ip: "169.254.0.1", rejected: true, wantMsg: "link-local"},
		{ip: "fe80::1", rejected: true, wantMsg: "link-local"},
		{ip: "fe80::1%eth0", rejected: true, wantMsg: "link-local"},
		{ip: "::ffff:169.254.169.254", rejected: true, wantMsg: "link-local"},

		// Multicast, unspecified, broadcast.
		{ip: "224.0.0.1", rejected: true, wantMsg: "multicast"},
		{ip: "239.255.255.250", rejected: true, wantMsg: "multicast"},
		{ip: "ff02::1", rejected: true, wantMsg: "multicast"},
		{ip: "ff05::2", rejected: true, wantMsg: "multicast"},
		{ip: "0.0.0.0", rejected: true, wantMsg: "unspecified"},
		{ip: "::", rejected: true, wantMsg: "unspecified"},
		{ip: "::ffff:0.0.0.0", rejected: true, wantMsg: "unspecified"},
		{ip: "255.255.255.255", rejected: true, wantMsg: "240.0.0.0/4"},

		// Carrier-grade NAT and other special ranges.
		{ip: "100.64.0.1", rejected: true, wantMsg: "carrier-grade NAT"},
		{ip: "100.127.255.254", rejected: true, wantMsg: "carrier-grade NAT"},
		{ip: "::ffff:100.64.0.1", rejected: true, wantMsg: "carrier-grade NAT"},
		{ip: "100.128.0.1"},
		{ip: "0.1.2.3", rejected: true, wantMsg: "0.0.0.0/8"},
		{ip: "192.0.0.192", rejected: true, wantMsg: "192.0.0.0/24"},
		{ip: "198.18.0.1", rejected: true, wantMsg: "benchmarking"},
		{ip: "250.1.2.3", rejected: true, wantMsg: "reserved"},
		{ip: "fec0::1", rejected: true, wantMsg: "site-local"},
		{ip: "::10.0.0.1", rejected: true, wantMsg: "IPv4-compatible"},

		// IPv4 addresses inside NAT64 and 6to4 addresses.
		{ip: "64:ff9b::a9fe:a9fe", rejected: true, wantMsg: "embeds 169.254.169.254"},
		{ip: "64:ff9b::7f00:1", rejected: true, wantMsg: "embeds 127.0.0.1"},
		{ip: "64:ff9b::7f00:1", allowLoopback: true},
		{ip: "2002:a00:1::1", rejected: true, wantMsg: "embeds 10.0.0.1"},
	}
	for _, tt := range tests {
		name := tt.ip
		if tt.allowLoopback {
			name += " allow loopback"
		}
		t.Run(name, func(t *testing.T) {
			err := CheckAddr(netip.MustParseAddr(tt.ip), tt.allowLoopback)
			if !tt.rejected {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrAddressRejected)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestCheckAddrInvalid(t *testing.T) {
	err := CheckAddr(netip.Addr{}, true)
	require.ErrorIs(t, err, ErrAddressRejected)
	require.ErrorContains(t, err, "invalid IP address")
}

// TestDialControl checks the function the dialer calls with each resolved
// address. It is called directly: no connection is made.
func TestDialControl(t *testing.T) {
	control := dialControl(false)
	require.ErrorIs(t, control(t.Context(), "tcp4", "10.0.0.1:443", nil), ErrAddressRejected)
	require.ErrorIs(t, control(t.Context(), "tcp6", "[fe80::1%eth0]:80", nil), ErrAddressRejected)
	require.ErrorIs(t, control(t.Context(), "tcp4", "127.0.0.1:8080", nil), ErrAddressRejected)
	require.NoError(t, control(t.Context(), "tcp4", "93.184.215.14:443", nil))

	err := control(t.Context(), "tcp", "not-an-address", nil)
	require.ErrorIs(t, err, ErrAddressRejected)
	require.ErrorContains(t, err, "cannot parse dial address")

	require.NoError(t, dialControl(true)(t.Context(), "tcp4", "127.0.0.1:8080", nil))
}
