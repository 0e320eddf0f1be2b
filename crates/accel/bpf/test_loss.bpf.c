// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test hosts only: random packet loss on one interface of a test namespace, for kernels without
 * netem (this machine's has no CONFIG_NET_SCH_NETEM). A tc (cls_bpf, direct action) program
 * drops each packet with the probability in loss_config (parts per million) and counts what it
 * dropped, so a test can prove the loss happened.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK_ 0
#define TC_ACT_SHOT_ 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} loss_config SEC(".maps");

/* [0]: packets seen, [1]: packets dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} loss_stats SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&loss_stats, &i);
	if (v)
		*v += 1;
}

SEC("classifier")
int test_loss(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u32 *ppm = bpf_map_lookup_elem(&loss_config, &k);

	count(0);
	if (ppm && bpf_get_prandom_u32() % 1000000 < *ppm) {
		count(1);
		return TC_ACT_SHOT_;
	}
	return TC_ACT_OK_;
}
