// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * AF_XDP steering: frames for one configured TCP port (the fast path's HTTP server) and one UDP
 * port (a raw packet-rate sink) go to the AF_XDP socket bound to the receiving queue, through an
 * XSKMAP keyed by rx queue index. Everything else (ARP, ICMP, other ports, fragments, frames
 * with IP options we do not walk) continues with XDP_PASS to the kernel, so the interface keeps
 * working for everything the fast path does not serve.
 *
 * A queue with no socket in the XSKMAP passes (bpf_redirect_map's fallback), so steering can be
 * attached before the sockets are bound without blackholing traffic.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_QUEUES 64

struct xs_config {
	__u16 tcp_port; /* host order; 0 = steer no TCP */
	__u16 udp_port; /* host order; 0 = steer no UDP */
	__u32 ipv6;     /* non-zero: steer IPv6 too (user space must resolve its neighbours) */
};

/* Per-CPU counters (index 0). User-space counters of the fast path live in xs_user. */
struct xs_stats {
	__u64 seen;      /* frames the program saw */
	__u64 tcp;       /* redirected TCP frames for tcp_port */
	__u64 udp;       /* redirected UDP frames for udp_port */
	__u64 passed;    /* frames passed to the kernel */
	__u64 no_socket; /* matched, but the queue has no socket: passed */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xs_config);
} xs_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xs_stats);
} xs_stats SEC(".maps");

/* The user-space fast path's own counters (written by it, read by `accel status`): 16 u64s. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} xs_user SEC(".maps");

/* Destination port of a TCP or UDP first fragment in [data, data_end), or 0. *proto gets L4. */
static __always_inline __u16 dst_port(void *data, void *data_end, __u32 ipv6, __u8 *proto)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return 0;
	__u16 h_proto = bpf_ntohs(eth->h_proto);
	if (h_proto == ETH_P_IP) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return 0;
		__u32 ihl = (*(__u8 *)ip & 0x0F) * 4;
		if (ihl < sizeof(*ip))
			return 0;
		/* Fragments go to the kernel, which reassembles them. */
		if (bpf_ntohs(ip->frag_off) & (IP_MF_ | IP_OFFSET_))
			return 0;
		*proto = ip->protocol;
		off += ihl;
	} else if (h_proto == ETH_P_IPV6 && ipv6) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		/* Extension headers go to the kernel. */
		*proto = ip6->nexthdr;
		off += sizeof(*ip6);
	} else {
		return 0;
	}
	if (*proto != IPPROTO_TCP_ && *proto != IPPROTO_UDP_)
		return 0;
	/* The destination port is bytes 2-3 of both TCP and UDP headers. */
	__u16 *ports = data + (off & 0xFF);
	if ((void *)(ports + 2) > data_end)
		return 0;
	return bpf_ntohs(ports[1]);
}

SEC("xdp")
int xsk_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct xs_stats *st = bpf_map_lookup_elem(&xs_stats, &zero);
	struct xs_config *cfg = bpf_map_lookup_elem(&xs_config, &zero);

	if (!st || !cfg)
		return XDP_PASS;
	st->seen++;
	__u8 proto = 0;
	__u16 port = dst_port(data, data_end, cfg->ipv6, &proto);
	int tcp = proto == IPPROTO_TCP_ && cfg->tcp_port && port == cfg->tcp_port;
	int udp = proto == IPPROTO_UDP_ && cfg->udp_port && port == cfg->udp_port;
	if (!tcp && !udp) {
		st->passed++;
		return XDP_PASS;
	}
	__u32 q = ctx->rx_queue_index;
	if (bpf_redirect_map(&xsks, q, XDP_PASS) == XDP_REDIRECT) {
		if (tcp)
			st->tcp++;
		else
			st->udp++;
		return XDP_REDIRECT;
	}
	st->no_socket++;
	st->passed++;
	return XDP_PASS;
}
