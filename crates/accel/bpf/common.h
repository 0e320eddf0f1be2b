/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Definitions shared by the disgrafs BPF programs. vmlinux.h carries the kernel's types (generated
 * from its BTF by `cargo xtask vmlinux`) but no preprocessor constants, so the few protocol numbers
 * the parsers need live here.
 */
#ifndef DISGRAFS_COMMON_H
#define DISGRAFS_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60

/* IPv4 frag_off bits (host order). */
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF

/* At most this many VLAN tags (802.1ad outer + 802.1Q inner) are walked. */
#define MAX_VLAN_TAGS 2
/* At most this many IPv6 extension headers are walked before giving up on a packet. */
#define MAX_IPV6_EXT 4

#endif
