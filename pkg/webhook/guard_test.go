package webhook_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
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
			err := webhook.CheckAddr(netip.MustParseAddr(tt.ip), tt.allowLoopback)
			if !tt.rejected {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrAddressRejected)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestCheckAddrLinkLocalIPv6(t *testing.T) {
	// The metadata address is IPv4, so the reason for an IPv6 link-local
	// address does not name it.
	err := webhook.CheckAddr(netip.MustParseAddr("fe80::1"), false)
	require.ErrorContains(t, err, "link-local")
	require.NotContains(t, err.Error(), "169.254.169.254")
}

func TestCheckAddrInvalid(t *testing.T) {
	err := webhook.CheckAddr(netip.Addr{}, true)
	require.ErrorIs(t, err, webhook.ErrAddressRejected)
	require.ErrorContains(t, err, "invalid IP address")
}

func TestGuardAllowPrefixes(t *testing.T) {
	g := webhook.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16"), netip.MustParsePrefix("fd00:1::/64")}}

	require.NoError(t, g.CheckAddr(netip.MustParseAddr("10.8.1.2")))
	require.NoError(t, g.CheckAddr(netip.MustParseAddr("::ffff:10.8.1.2")))
	require.NoError(t, g.CheckAddr(netip.MustParseAddr("fd00:1::5")))
	require.NoError(t, g.CheckAddr(netip.MustParseAddr("93.184.215.14")))

	// Ranges outside the allowed ones keep their rules.
	require.ErrorIs(t, g.CheckAddr(netip.MustParseAddr("10.9.0.1")), webhook.ErrAddressRejected)
	require.ErrorIs(t, g.CheckAddr(netip.MustParseAddr("127.0.0.1")), webhook.ErrAddressRejected)
	require.ErrorIs(t, g.CheckAddr(netip.MustParseAddr("169.254.169.254")), webhook.ErrAddressRejected)
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url           string
		allowLoopback bool
		wantErr       error
		wantMsg       string
	}{
		// Public hosts and addresses pass; names are not resolved.
		{url: "https://hooks.example.com/handoff?token=x"},
		{url: "http://93.184.215.14:8080/hook"},
		{url: "https://[2606:4700:4700::1111]/hook"},
		{url: "https://receiver/hook"},
		{url: "https://10.example.com/hook"},
		{url: "https://0x7f.example.com/hook"},

		// Loopback literals and names: only with allowLoopback.
		{url: "http://127.0.0.1:9000/", wantErr: webhook.ErrAddressRejected, wantMsg: "127.0.0.1 is a loopback address"},
		{url: "http://[::1]:9000/", wantErr: webhook.ErrAddressRejected, wantMsg: "loopback"},
		{url: "http://localhost:9000/", wantErr: webhook.ErrAddressRejected, wantMsg: `host "localhost" is a loopback name`},
		{url: "http://LocalHost./", wantErr: webhook.ErrAddressRejected, wantMsg: "loopback name"},
		{url: "http://api.localhost/", wantErr: webhook.ErrAddressRejected, wantMsg: "loopback name"},
		{url: "http://127.0.0.1:9000/", allowLoopback: true},
		{url: "http://[::1]:9000/", allowLoopback: true},
		{url: "http://localhost:9000/", allowLoopback: true},

		// Internal literals are rejected even with allowLoopback.
		{url: "http://10.0.0.1/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "private"},
		{url: "http://169.254.169.254/latest/meta-data/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "link-local"},
		{url: "http://[fd00:ec2::254]/", wantErr: webhook.ErrAddressRejected, wantMsg: "private"},
		{url: "http://[fe80::1%25eth0]/", wantErr: webhook.ErrAddressRejected, wantMsg: "link-local"},
		{url: "http://[::ffff:192.168.0.1]/", wantErr: webhook.ErrAddressRejected, wantMsg: "private"},
		{url: "http://0.0.0.0:8080/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "unspecified"},
		{url: "http://100.100.100.200/", wantErr: webhook.ErrAddressRejected, wantMsg: "carrier-grade NAT"},

		// Cloud metadata names.
		{url: "http://metadata.google.internal/computeMetadata/v1/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "cloud metadata"},
		{url: "http://METADATA/", wantErr: webhook.ErrAddressRejected, wantMsg: "cloud metadata"},

		// Numbers that inet_aton reads as addresses.
		{url: "http://2130706433/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "four decimal numbers"},
		{url: "http://127.1/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "four decimal numbers"},
		{url: "http://0x7f.0.0.1/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "four decimal numbers"},
		{url: "http://0177.0.0.1/", allowLoopback: true, wantErr: webhook.ErrAddressRejected, wantMsg: "four decimal numbers"},

		// Malformed URLs.
		{url: "", wantErr: webhook.ErrInvalidURL, wantMsg: "the URL is empty"},
		{url: "ftp://example.com/", wantErr: webhook.ErrInvalidURL, wantMsg: `scheme "ftp" is not http or https`},
		{url: "https:///hook", wantErr: webhook.ErrInvalidURL, wantMsg: "has no host"},
		{url: "https://user:pw@example.com/", wantErr: webhook.ErrInvalidURL, wantMsg: "credentials"},
		{url: "https://example.com/#frag", wantErr: webhook.ErrInvalidURL, wantMsg: "fragment"},
		{url: "https://example.com/" + strings.Repeat("a", 2048), wantErr: webhook.ErrInvalidURL, wantMsg: "longer than the maximum"},
	}
	for _, tt := range tests {
		name := tt.url
		if tt.allowLoopback {
			name += " allow loopback"
		}
		t.Run(name, func(t *testing.T) {
			err := webhook.CheckURL(tt.url, tt.allowLoopback)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestGuardCheckURLAllowPrefixes(t *testing.T) {
	g := webhook.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	require.NoError(t, g.CheckURL("http://10.1.2.3:8080/hook"))
	require.ErrorIs(t, g.CheckURL("http://192.168.1.1/hook"), webhook.ErrAddressRejected)
}

// TestDialControl checks the function the dialer calls with each resolved
// address. It is called directly: no connection is made.
func TestDialControl(t *testing.T) {
	control := webhook.Guard{}.DialControl()
	require.ErrorIs(t, control(t.Context(), "tcp4", "10.0.0.1:443", nil), webhook.ErrAddressRejected)
	require.ErrorIs(t, control(t.Context(), "tcp6", "[fe80::1%eth0]:80", nil), webhook.ErrAddressRejected)
	require.ErrorIs(t, control(t.Context(), "tcp4", "127.0.0.1:8080", nil), webhook.ErrAddressRejected)
	require.ErrorIs(t, control(t.Context(), "tcp4", "169.254.169.254:80", nil), webhook.ErrAddressRejected)
	require.NoError(t, control(t.Context(), "tcp4", "93.184.215.14:443", nil))

	err := control(t.Context(), "tcp", "not-an-address", nil)
	require.ErrorIs(t, err, webhook.ErrAddressRejected)
	require.ErrorContains(t, err, "cannot parse dial address")

	require.NoError(t, webhook.Guard{AllowLoopback: true}.DialControl()(t.Context(), "tcp4", "127.0.0.1:8080", nil))
	allowed := webhook.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}.DialControl()
	require.NoError(t, allowed(t.Context(), "tcp4", "10.0.0.1:443", nil))
}
