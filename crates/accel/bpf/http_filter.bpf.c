// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * HTTP observer: a socket filter for a raw AF_PACKET socket bound to one interface.
 *
 * It keeps (returns a snap length for) only the frames whose TCP payload starts an HTTP/1.x
 * request, and drops everything else in the kernel, so user space wakes up once per request instead
 * of once per packet. It walks Ethernet, up to two in-band VLAN tags, IPv4 (any IHL) or IPv6 (with
 * up to MAX_IPV6_EXT extension headers) and TCP (any data offset).
 *
 * Socket filters may not read packet memory directly, so every header is copied with
 * bpf_skb_load_bytes(), which itself fails on reads past the end of the frame: truncated frames
 * are dropped by that check, never read out of bounds.
 *
 * A payload is kept when it begins with "METHOD SP target" (METHOD: MIN_METHOD..MAX_METHOD
 * upper-case letters, '-' or '_': every registered method has at least 3, and a shorter one is
 * more likely the tail of a split method, as in "GE" + "T / HTTP/1.1"; target: '/', '*' or a letter for absolute and authority forms) and either
 *   - the request line ends inside the scanned window with " HTTP/1.<digit>" (the common case), or
 *   - no line end is in the window: the line is longer than the window, or the request line was
 *     split across TCP segments. User space validates such frames fully and counts a split request
 *     line as such (it does not reassemble: see crates/accel/src/http/mod.rs).
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Bytes of payload scanned for the request line; a power of two so masks keep indexes in bounds. */
#define WINDOW 256
#define WINDOW_MASK (WINDOW - 1)
#define MIN_METHOD 3
#define MAX_METHOD 20
/* The shortest payload worth a look: a split line's first segment, "GET /". */
#define MIN_PAYLOAD (MIN_METHOD + 2)
/* Frames are truncated to this many bytes for user space: headers plus the request head. */
#define SNAP_LEN 8192

/* Scratch buffer for the payload window: too big for the 512-byte BPF stack. */
struct scratch {
	__u8 buf[WINDOW];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} http_scratch SEC(".maps");

/* Per-CPU verdict counters: what the filter saw and kept, read by `accel status` style tools. */
enum {
	HF_SEEN = 0,      /* frames the filter ran on */
	HF_KEPT,          /* frames passed to user space */
	HF_NOT_TCP,       /* IPv4/IPv6 but not TCP, or not IP at all */
	HF_NO_PAYLOAD,    /* TCP without enough payload */
	HF_NOT_HTTP,      /* payload does not start an HTTP/1.x request */
	HF_MALFORMED,     /* headers truncated or inconsistent */
	HF_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HF_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} http_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&http_counters, &which);
	if (v)
		*v += 1;
}

static __always_inline int is_method_char(__u8 c)
{
	return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

static __always_inline int is_target_start(__u8 c)
{
	return c == '/' || c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '[';
}

/*
 * Returns the offset of the TCP payload and its length through *len, or a negative value when the
 * frame is not TCP over IPv4/IPv6 (the counter to bump is returned negated).
 */
static __always_inline int tcp_payload(struct __sk_buff *skb, __u32 *len)
{
	struct ethhdr eth;
	__u32 off = 0;
	__u16 proto;
	__u32 l4_end; /* end of the IP datagram within the frame */
	__u8 l4proto;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -HF_MALFORMED;
	proto = bpf_ntohs(eth.h_proto);
	off = sizeof(eth);

	/* In-band VLAN tags. (Tags the driver moved to skb->vlan_tci are not in the data at all.) */
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct vlan_hdr vh;
		if (bpf_skb_load_bytes(skb, off, &vh, sizeof(vh)) < 0)
			return -HF_MALFORMED;
		proto = bpf_ntohs(vh.h_vlan_encapsulated_proto);
		off += sizeof(vh);
	}

	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
			return -HF_MALFORMED;
		/* Version and IHL share one byte; read it raw rather than through bitfields. */
		__u8 vihl = *(__u8 *)&ip;
		__u32 ihl = (vihl & 0x0F) * 4;
		if ((vihl >> 4) != 4 || ihl < sizeof(ip))
			return -HF_MALFORMED;
		if (ip.protocol != IPPROTO_TCP_)
			return -HF_NOT_TCP;
		/* Only a first fragment carries the TCP header. */
		if (bpf_ntohs(ip.frag_off) & IP_OFFSET_)
			return -HF_NOT_TCP;
		__u32 tot = bpf_ntohs(ip.tot_len);
		if (tot < ihl)
			return -HF_MALFORMED;
		/* The IP total length, not the frame length, bounds the payload: short frames are
		 * padded to 60 bytes on the wire and the padding is not payload. */
		l4_end = off + tot;
		off += ihl;
		l4proto = IPPROTO_TCP_;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return -HF_MALFORMED;
		if ((*(__u8 *)&ip6 >> 4) != 6)
			return -HF_MALFORMED;
		l4_end = off + sizeof(ip6) + bpf_ntohs(ip6.payload_len);
		l4proto = ip6.nexthdr;
		off += sizeof(ip6);
#pragma unroll
		for (int i = 0; i < MAX_IPV6_EXT; i++) {
			if (l4proto == IPPROTO_HOPOPTS_ || l4proto == IPPROTO_ROUTING_ ||
			    l4proto == IPPROTO_DSTOPTS_) {
				struct ipv6_opt_hdr oh;
				if (bpf_skb_load_bytes(skb, off, &oh, sizeof(oh)) < 0)
					return -HF_MALFORMED;
				l4proto = oh.nexthdr;
				off += (oh.hdrlen + 1) * 8;
			} else if (l4proto == IPPROTO_FRAGMENT_) {
				struct frag_hdr fh;
				if (bpf_skb_load_bytes(skb, off, &fh, sizeof(fh)) < 0)
					return -HF_MALFORMED;
				/* Offset in the upper 13 bits: only the first fragment has TCP. */
				if (bpf_ntohs(fh.frag_off) & 0xFFF8)
					return -HF_NOT_TCP;
				l4proto = fh.nexthdr;
				off += sizeof(fh);
			} else {
				break;
			}
		}
	} else {
		return -HF_NOT_TCP;
	}

	if (l4proto != IPPROTO_TCP_)
		return -HF_NOT_TCP;

	/* TCP data offset: the high nibble of byte 12 (read raw, it is a bitfield). */
	__u8 doff_byte;
	if (bpf_skb_load_bytes(skb, off + 12, &doff_byte, 1) < 0)
		return -HF_MALFORMED;
	__u32 doff = (doff_byte >> 4) * 4;
	if (doff < sizeof(struct tcphdr))
		return -HF_MALFORMED;
	off += doff;
	if (l4_end > skb->len)
		l4_end = skb->len; /* a lying length field: trust what is really there */
	if (off >= l4_end)
		return -HF_NO_PAYLOAD;
	*len = l4_end - off;
	return off;
}

/*
 * Decides whether the payload at [off, off + plen) starts an HTTP/1.x request: returns SNAP_LEN to
 * keep the frame, 0 to drop it. A global (non-inlined) function, so the verifier checks it once
 * with unknown arguments instead of once per header shape that leads to it.
 */
__noinline int http_verdict(struct __sk_buff *skb, __u32 off, __u32 plen)
{
	__u32 zero = 0;

	if (!skb)
		return 0;
	struct scratch *s = bpf_map_lookup_elem(&http_scratch, &zero);
	if (!s)
		return 0;
	__u64 n = plen;
	if (n > WINDOW)
		n = WINDOW;
	/* Keep clang from folding the checks away: bpf_skb_load_bytes needs a length the verifier
	 * can see is in [1, WINDOW]. */
	barrier_var(n);
	if (n < MIN_PAYLOAD || n > WINDOW)
		return 0;
	if (bpf_skb_load_bytes(skb, off, s->buf, n) < 0) {
		count(HF_MALFORMED);
		return 0;
	}

	/* Method: a token of upper-case letters, then one space. */
	__u32 m = 0;
	for (__u32 i = 0; i < MAX_METHOD + 1; i++) {
		if (i >= n)
			break;
		if (!is_method_char(s->buf[i & WINDOW_MASK]))
			break;
		m = i + 1;
	}
	if (m < MIN_METHOD || m > MAX_METHOD || m + 1 >= n || s->buf[m & WINDOW_MASK] != ' ' ||
	    !is_target_start(s->buf[(m + 1) & WINDOW_MASK])) {
		count(HF_NOT_HTTP);
		return 0;
	}

	/* Find the end of the request line inside the window. */
	__u32 eol = 0;
	for (__u32 i = 0; i < WINDOW; i++) {
		if (i >= n)
			break;
		if (s->buf[i & WINDOW_MASK] == '\n') {
			eol = i;
			break;
		}
	}
	if (eol == 0) {
		/* No line end in the window: too long a line or a split one; user space decides. */
		count(HF_KEPT);
		return SNAP_LEN;
	}
	__u32 e = eol;
	if (s->buf[(e - 1) & WINDOW_MASK] == '\r')
		e -= 1;
	/* " HTTP/1.x" is 9 bytes and must follow "M /" at least. */
	if (e < m + 2 + 9) {
		count(HF_NOT_HTTP);
		return 0;
	}
	__u32 v = e - 9;
	if (s->buf[v & WINDOW_MASK] != ' ' || s->buf[(v + 1) & WINDOW_MASK] != 'H' ||
	    s->buf[(v + 2) & WINDOW_MASK] != 'T' || s->buf[(v + 3) & WINDOW_MASK] != 'T' ||
	    s->buf[(v + 4) & WINDOW_MASK] != 'P' || s->buf[(v + 5) & WINDOW_MASK] != '/' ||
	    s->buf[(v + 6) & WINDOW_MASK] != '1' || s->buf[(v + 7) & WINDOW_MASK] != '.' ||
	    s->buf[(v + 8) & WINDOW_MASK] < '0' || s->buf[(v + 8) & WINDOW_MASK] > '9') {
		count(HF_NOT_HTTP);
		return 0;
	}
	count(HF_KEPT);
	return SNAP_LEN;
}

SEC("socket")
int http_filter(struct __sk_buff *skb)
{
	__u32 plen = 0;
	int off;

	count(HF_SEEN);
	off = tcp_payload(skb, &plen);
	if (off < 0) {
		count(-off);
		return 0;
	}
	if (plen < MIN_PAYLOAD) {
		count(HF_NO_PAYLOAD);
		return 0;
	}
	return http_verdict(skb, off, plen);
}
