// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * XDP CPU balancing: spreads the receive work of one interface over CPUs chosen by weight.
 *
 * cpu_balance (attached to the interface) hashes each packet's flow (addresses, protocol and, for
 * TCP/UDP first fragments, ports), maps the hash through a table of SLOTS entries to a CPU, and
 * redirects the frame through a CPUMAP: the kernel then builds the skb and runs the stack on that
 * CPU. The slot table is filled by user space in proportion to the weights, so weights change at
 * run time by rewriting two maps, without reattaching. One flow always hashes to one slot, hence to
 * one CPU while the weights stay the same, so TCP is not reordered by the spreading.
 *
 * cpu_balance_on_cpu runs on the target CPU for every frame the CPUMAP delivers (it is installed
 * in each CPUMAP entry): it counts deliveries per CPU and, when asked, records which CPUs each
 * flow landed on (the tests' proof of flow affinity).
 *
 * cpu_balance_enqueue (tp_btf on xdp_cpumap_enqueue) counts the frames the CPUMAP dropped because
 * a CPU's queue was full.
 */
#include "common.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Slot table size: weights are realised with a resolution of 1/SLOTS. A power of two. */
#define SLOTS 256
#define MAX_CPUS 128

struct cb_config {
	__u32 nslots;      /* slots in use (1..SLOTS); 0 = pass everything untouched */
	__u32 track_flows; /* non-zero: record flow -> CPU set in flow_cpus */
	__u32 cpu_map_id;  /* id of cpu_map, to pick our drops out of the global tracepoint */
	__u32 _pad;
};

/* Per-CPU counters; one struct per CPU in a per-CPU array (index 0). */
struct cb_stats {
	__u64 received;   /* frames the XDP program saw on this CPU */
	__u64 redirected; /* frames this CPU handed to a CPUMAP queue */
	__u64 passed;     /* frames passed up the stack here (not IP, balancing off, no target) */
	__u64 dropped;    /* frames the CPUMAP dropped on enqueue from this CPU (queue full) */
	__u64 delivered;  /* frames the CPUMAP delivered to this CPU (the work it took over) */
};

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, MAX_CPUS); /* user space sets it to the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} cpu_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cb_config);
} cb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cb_stats);
} cb_stats SEC(".maps");

/* flow hash -> bitmask of the CPUs (< 64) its frames were delivered on. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} flow_cpus SEC(".maps");

static __always_inline struct cb_stats *stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cb_stats, &zero);
}

/* murmur3's finaliser: cheap and spreads sequential ports well over the slots. */
static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * Hashes the flow of the frame in [data, data_end) into *out. Returns 0 when the frame is not
 * IPv4/IPv6 (it is then passed on the receiving CPU), 1 otherwise.
 */
static __always_inline int flow_hash(void *data, void *data_end, __u32 *out)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;
	__u32 h = 0;
	__u8 l4proto;
	int ports_ok = 1;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct vlan_hdr *vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return 0;
		proto = bpf_ntohs(vh->h_vlan_encapsulated_proto);
		off += sizeof(*vh);
	}

	if (proto == ETH_P_IP) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return 0;
		__u32 ihl = (*(__u8 *)ip & 0x0F) * 4;
		if (ihl < sizeof(*ip))
			return 0;
		l4proto = ip->protocol;
		h = mix32(ip->saddr ^ mix32(ip->daddr ^ l4proto));
		/* Fragments hash on addresses only, so all fragments of a datagram stay together. */
		if (bpf_ntohs(ip->frag_off) & (IP_MF_ | IP_OFFSET_))
			ports_ok = 0;
		off += ihl;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		l4proto = ip6->nexthdr;
		__u32 *a = (__u32 *)&ip6->saddr;
		/* saddr and daddr: 8 words, adjacent. */
		h = l4proto;
#pragma unroll
		for (int i = 0; i < 8; i++)
			h = mix32(h ^ a[i]);
		off += sizeof(*ip6);
		/* Extension headers make ports costly to find; such flows hash on addresses only. */
		if (l4proto != IPPROTO_TCP_ && l4proto != IPPROTO_UDP_)
			ports_ok = 0;
	} else {
		return 0;
	}

	if (ports_ok && (l4proto == IPPROTO_TCP_ || l4proto == IPPROTO_UDP_)) {
		/* Source and destination ports are the first 4 bytes of both TCP and UDP. */
		__u32 *ports = data + (off & 0xFF);
		if ((void *)(ports + 1) <= data_end)
			h = mix32(h ^ *ports);
	}
	*out = h;
	return 1;
}

SEC("xdp")
int cpu_balance(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct cb_stats *st = stats();
	__u32 zero = 0;

	if (!st)
		return XDP_PASS;
	st->received++;

	struct cb_config *cfg = bpf_map_lookup_elem(&cb_config, &zero);
	if (!cfg || cfg->nslots == 0 || cfg->nslots > SLOTS)
		goto pass;
	__u32 h = 0;
	if (!flow_hash(data, data_end, &h))
		goto pass;
	__u32 slot = h % cfg->nslots;
	__u32 *cpu = bpf_map_lookup_elem(&cpu_slots, &slot);
	if (!cpu)
		goto pass;
	/* The low bits of flags are the verdict when the CPU has no CPUMAP entry. */
	if (bpf_redirect_map(&cpu_map, *cpu, XDP_PASS) == XDP_REDIRECT) {
		st->redirected++;
		return XDP_REDIRECT;
	}
pass:
	st->passed++;
	return XDP_PASS;
}

SEC("xdp/cpumap")
int cpu_balance_on_cpu(struct xdp_md *ctx)
{
	struct cb_stats *st = stats();
	__u32 zero = 0;

	if (st)
		st->delivered++;
	struct cb_config *cfg = bpf_map_lookup_elem(&cb_config, &zero);
	if (cfg && cfg->track_flows) {
		__u32 h = 0;
		__u32 me = bpf_get_smp_processor_id();
		if (flow_hash((void *)(long)ctx->data, (void *)(long)ctx->data_end, &h) && me < 64) {
			__u64 bit = 1ULL << me;
			__u64 *seen = bpf_map_lookup_elem(&flow_cpus, &h);
			if (seen)
				__sync_fetch_and_or(seen, bit);
			else
				bpf_map_update_elem(&flow_cpus, &h, &bit, BPF_NOEXIST);
		}
	}
	return XDP_PASS;
}

SEC("tp_btf/xdp_cpumap_enqueue")
int BPF_PROG(cpu_balance_enqueue, int map_id, unsigned int processed, unsigned int drops, int to_cpu)
{
	__u32 zero = 0;
	struct cb_config *cfg = bpf_map_lookup_elem(&cb_config, &zero);

	if (!drops || !cfg || (__u32)map_id != cfg->cpu_map_id)
		return 0;
	/* The tracepoint fires on the enqueuing CPU: the one whose counters we bump. */
	struct cb_stats *st = stats();
	if (st)
		st->dropped += drops;
	return 0;
}
