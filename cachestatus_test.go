package cache

import "testing"

// RFC 9211 §2: the member is the cache's name, then its parameters.
func TestStatusMemberFormat(t *testing.T) {
	for _, tc := range []struct {
		m    statusMember
		want string
	}{
		{hitMember(60, ""), `Caddy; hit; ttl=60`},
		{hitMember(-5, "stale-while-revalidate"), `Caddy; hit; ttl=-5; detail="stale-while-revalidate"`},
		{fwdMember("bypass", "method"), `Caddy; fwd=bypass; detail="method"`},
		{statusMember{fwd: "stale", fwdStatus: 304, stored: true}.withTTL(30), `Caddy; fwd=stale; fwd-status=304; stored; ttl=30`},
		{statusMember{fwd: "miss", stored: true}, `Caddy; fwd=miss; stored`},
		{fwdMember("uri-miss", `a "quoted" detail`), `Caddy; fwd=uri-miss; detail="a \"quoted\" detail"`},
	} {
		if got := tc.m.format("Caddy"); got != tc.want {
			t.Errorf("format(%+v) = %s, want %s", tc.m, got, tc.want)
		}
	}
}
