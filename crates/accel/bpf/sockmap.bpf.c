// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Same-host TCP bypass: messages between two local TCP sockets skip the TCP/IP stack.
 *
 * sockmap_sockops (cgroup sock_ops, attached to a cgroup the user named) puts every established
 * TCP socket whose peer is on this host (loopback, or a connection to one of the host's own
 * addresses: local address == remote address) into sock_map, keyed by its 4-tuple and its
 * network namespace's cookie (the same 4-tuple can exist in two namespaces). The kernel removes a
 * socket from the map by itself when it closes; the state callback only counts that.
 *
 * A socket in the map should never receive bytes over TCP: this kernel's FIONREAD on a socket in
 * a sockmap counts only the bytes redirected to it, so a reader that asks FIONREAD before waiting
 * for more (nginx does, with edge-triggered epoll) waits forever for bytes already queued. And a
 * socket must never leave the map while bytes redirected to it are unread: taking it out drops
 * its psock and those bytes with it. Hence:
 * - a passive socket joins only when its peer (the active end, established first) is a member,
 *   so a server socket whose client is outside the bypass stays a plain TCP socket;
 * - an active socket whose peer never joined (a server outside the bypass) leaves the map before
 *   its first data segment goes out over TCP (a callback on each transmitted segment,
 *   BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, writing no option); nothing was redirected to it;
 * - `members` records each member's key (MEMBER), and WENT_TCP once it sent over TCP: a passive
 *   socket whose client already did (the client's first message raced the passive join) takes
 *   both out of the map again at once, before either received a redirected byte;
 * - a direction never moves to TCP between two members unless the small-write policy is turned
 *   on (off by default, see the crate README for what it costs).
 *
 * sockmap_msg (sk_msg, attached to sock_map) runs on every sendmsg/sendfile/splice of a socket in
 * the map. When the peer socket (the reversed 4-tuple) is in the map, the data is put straight on
 * the peer's receive queue (bpf_msg_redirect_hash with BPF_F_INGRESS); otherwise it takes the
 * normal path. A direction that once went the normal path never goes back to redirecting: the
 * receiver reads redirected data before the TCP receive queue, so only redirect -> pass keeps
 * bytes in order (see the crate README, "Kernel behaviours").
 *
 * Addresses are keyed in IPv6 form with IPv4 as ::ffff:a.b.c.d, so an AF_INET client and an
 * AF_INET6 dual-stack server socket (which sees the client as v4-mapped) find each other.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

struct sock_key {
	__u32 local_ip[4];  /* network order, IPv4 as v4-mapped IPv6 */
	__u32 remote_ip[4];
	__u32 local_port;   /* host order */
	__u32 remote_port;  /* host order */
	__u64 netns;        /* bpf_get_netns_cookie */
};

/* Mirror of SockmapConfig in src/sockmap/mod.rs. */
struct sm_config {
	__u32 redirect;     /* 0: every message takes the normal path (detach drains with it) */
	__u32 small_bytes;  /* a message below this size counts as small; 0 = small-write policy off */
	__u32 small_run;    /* this many small messages in a row, with no reply, move the direction
			     * to the normal path for good */
	__u32 _pad;
};

/* Per-CPU counters, one struct per CPU (index 0). Mirror of SockmapCounters. */
struct sm_stats {
	__u64 sockets_added;
	__u64 sockets_removed;
	__u64 add_failed;        /* map full, or the kernel refused the socket */
	__u64 msgs_redirected;
	__u64 bytes_redirected;
	__u64 msgs_passed;
	__u64 bytes_passed;
	__u64 directions_to_tcp; /* directions moved to the normal path by the small-write policy */
	__u64 sockets_left;      /* members taken out of the map before TCP data could reach them */
};

/* Per-socket state: the socket is in the map; its sends take the normal path for good; how many
 * small messages it sent in a row without its peer sending anything back. */
#define ST_IN_MAP 1
#define ST_TCP 2
struct sk_state {
	__u32 flags;
	__u32 small_run;
};

#define MAX_SOCKETS 65536

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, struct sock_key);
	__type(value, __u32);
} sock_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_config);
} sm_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_stats);
} sm_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sk_state);
} sk_state SEC(".maps");

/* Member's key -> MEMBER; WENT_TCP once it sent data over TCP; CLOSED; TAKEN_OUT (see the top of
 * the file). */
#define MEMBER 1
#define WENT_TCP 2
#define CLOSED 3
#define TAKEN_OUT 4 /* taken out of the map by its peer's callback */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, struct sock_key);
	__type(value, __u32);
} members SEC(".maps");

/* Receiver's key -> "its peer sent something since the receiver last sent" (the small-write
 * policy's notion of a reply). The sk_msg program cannot hold a reference to the peer socket
 * (no bpf_sk_release there), so this lives beside the sockets rather than in their storage. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, struct sock_key);
	__type(value, __u32);
} spoke SEC(".maps");

static __always_inline struct sm_stats *stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sm_stats, &zero);
}

static __always_inline struct sm_config *sm_conf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sm_config, &zero);
}

/* Both addresses of a socket as its context gives them. Every field is read unconditionally,
 * each with a constant offset: the verifier refuses a context load through a computed pointer,
 * which clang otherwise makes of "ip4 or ip6[n] depending on the family". */
struct ctx_addrs {
	__u32 family, local4, remote4;
	__u32 local6[4], remote6[4];
};

#define CTX_ADDRS(ctx, a)                                                                     \
	do {                                                                                  \
		(a)->family = (ctx)->family;                                                  \
		(a)->local4 = (ctx)->local_ip4;                                               \
		(a)->remote4 = (ctx)->remote_ip4;                                             \
		(a)->local6[0] = (ctx)->local_ip6[0];                                         \
		(a)->local6[1] = (ctx)->local_ip6[1];                                         \
		(a)->local6[2] = (ctx)->local_ip6[2];                                         \
		(a)->local6[3] = (ctx)->local_ip6[3];                                         \
		(a)->remote6[0] = (ctx)->remote_ip6[0];                                       \
		(a)->remote6[1] = (ctx)->remote_ip6[1];                                       \
		(a)->remote6[2] = (ctx)->remote_ip6[2];                                       \
		(a)->remote6[3] = (ctx)->remote_ip6[3];                                       \
		barrier_var((a)->family);                                                     \
	} while (0)

/* Writes one address in v6 form (IPv4 as v4-mapped); returns 0 for other families. */
static __always_inline int v6_form(__u32 family, __u32 ip4, const __u32 *ip6, __u32 *out)
{
	if (family == AF_INET) {
		out[0] = 0;
		out[1] = 0;
		out[2] = bpf_htonl(0x0000ffff);
		out[3] = ip4;
		return 1;
	}
	if (family == AF_INET6) {
		out[0] = ip6[0];
		out[1] = ip6[1];
		out[2] = ip6[2];
		out[3] = ip6[3];
		return 1;
	}
	return 0;
}

/* The peer is on this host: loopback (127/8, ::1, ::ffff:127/104) or the socket talks to its own
 * address (a connection to one of the host's addresses is routed over lo with that source). */
static __always_inline int peer_is_local(const struct sock_key *k)
{
	const __u32 *r = k->remote_ip;
	if (r[0] == 0 && r[1] == 0 && r[2] == bpf_htonl(0x0000ffff) &&
	    (bpf_ntohl(r[3]) >> 24) == 127)
		return 1;
	if (r[0] == 0 && r[1] == 0 && r[2] == 0 && r[3] == bpf_htonl(1))
		return 1;
	return r[0] == k->local_ip[0] && r[1] == k->local_ip[1] && r[2] == k->local_ip[2] &&
	       r[3] == k->local_ip[3];
}

/* The socket's own key, from a sock_ops context; 0 for families other than IPv4/IPv6. */
static __always_inline int own_key(struct bpf_sock_ops *skops, struct sock_key *k)
{
	struct ctx_addrs a;

	CTX_ADDRS(skops, &a);
	if (!v6_form(a.family, a.local4, a.local6, k->local_ip) ||
	    !v6_form(a.family, a.remote4, a.remote6, k->remote_ip))
		return 0;
	k->local_port = skops->local_port;
	/* remote_port is the network-order port in the upper half of the field. */
	k->remote_port = bpf_ntohl(skops->remote_port);
	k->netns = bpf_get_netns_cookie(skops);
	return 1;
}

/* The key the peer of the socket keyed `k` has: the same connection seen from the other end. */
static __always_inline struct sock_key peer_of(const struct sock_key *k)
{
	struct sock_key p = {
		.local_port = k->remote_port,
		.remote_port = k->local_port,
		.netns = k->netns,
	};

	__builtin_memcpy(p.local_ip, k->remote_ip, sizeof(p.local_ip));
	__builtin_memcpy(p.remote_ip, k->local_ip, sizeof(p.remote_ip));
	return p;
}

/* Takes the socket keyed `k` and its peer out of the map (a sock_ops program may delete from a
 * SOCKHASH, an sk_msg program may not) and marks it, so that a late-joining peer leaves too. */
static __always_inline void leave_for_tcp(struct sm_stats *s, struct sk_state *st,
					  const struct sock_key *k)
{
	struct sock_key p = peer_of(k);
	__u32 went = WENT_TCP;

	bpf_map_update_elem(&members, k, &went, BPF_ANY);
	if (bpf_map_delete_elem(&sock_map, &p) == 0) {
		__u32 out = TAKEN_OUT;

		bpf_map_update_elem(&members, &p, &out, BPF_ANY);
		if (s)
			s->sockets_left++;
	}
	if (bpf_map_delete_elem(&sock_map, k) == 0 && s)
		s->sockets_left++;
	st->flags = (st->flags & ~ST_IN_MAP) | ST_TCP;
}

SEC("sockops")
int sockmap_sockops(struct bpf_sock_ops *skops)
{
	struct sm_stats *s = stats();
	struct sock_key k = {};
	struct sk_state *st;
	struct bpf_sock *sk;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (!own_key(skops, &k) || !peer_is_local(&k))
			return 1;
		sk = skops->sk;
		if (!sk)
			return 1;
		if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
			struct sock_key p = peer_of(&k);
			__u32 *m = bpf_map_lookup_elem(&members, &p);

			/* A client outside the bypass would send over TCP. */
			if (!m || *m != MEMBER)
				return 1;
		}
		st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		if (bpf_sock_hash_update(skops, &sock_map, &k, BPF_NOEXIST) != 0) {
			if (s)
				s->add_failed++;
			return 1;
		}
		st->flags = ST_IN_MAP;
		{
			__u32 one = MEMBER;
			bpf_map_update_elem(&members, &k, &one, BPF_ANY);
		}
		if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
			/* Checked again after joining: the client may have sent over TCP (and
			 * marked itself) between the first check and the insert. */
			struct sock_key p = peer_of(&k);
			__u32 *m = bpf_map_lookup_elem(&members, &p);

			if (!m || *m != MEMBER) {
				leave_for_tcp(s, st, &k);
				return 1;
			}
		}
		/* Ask for state changes, to count the socket out when it closes, and for every
		 * transmitted segment, to leave the map before sending data over TCP. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG |
							 BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		if (s)
			s->sockets_added++;
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB: {
		struct sock_key p;

		/* skb_len is the payload here (the header is not pushed yet); 0 for a pure ACK, a
		 * FIN, or the MSS probe without an skb. */
		if (!skops->skb_len)
			break;
		sk = skops->sk;
		if (!sk || !own_key(skops, &k))
			break;
		/* One decision per socket: no more callbacks after its first data segment. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
							 ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
		if (!st || !(st->flags & ST_IN_MAP))
			break;
		p = peer_of(&k);
		/* Only when the peer never joined: then nothing was ever redirected to us. */
		if (bpf_map_lookup_elem(&members, &p))
			break;
		{
			__u32 went = WENT_TCP;
			bpf_map_update_elem(&members, &k, &went, BPF_ANY);
		}
		if (bpf_map_delete_elem(&sock_map, &k) == 0 && s)
			s->sockets_left++;
		st->flags = (st->flags & ~ST_IN_MAP) | ST_TCP;
		break;
	}
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		sk = skops->sk;
		if (!sk)
			break;
		st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
		if (!st || !own_key(skops, &k))
			break;
		/* Still a member (not taken out for TCP, by itself or its peer): the kernel
		 * removes it from the map now. */
		{
			__u32 *m = bpf_map_lookup_elem(&members, &k);

			if ((st->flags & ST_IN_MAP) && !(m && *m == TAKEN_OUT) && s)
				s->sockets_removed++;
		}
		st->flags &= ~ST_IN_MAP;
		/* Kept (LRU) rather than deleted: a peer sending afterwards must still see that
		 * this socket was a member, or it would leave the map with unread bytes. */
		{
			__u32 closed = CLOSED;
			bpf_map_update_elem(&members, &k, &closed, BPF_ANY);
		}
		break;
	}
	return 1;
}

static __always_inline int pass(struct sm_stats *s, __u32 size)
{
	if (s) {
		s->msgs_passed++;
		s->bytes_passed += size;
	}
	return SK_PASS;
}

SEC("sk_msg")
int sockmap_msg(struct sk_msg_md *msg)
{
	struct sm_config *c = sm_conf();
	struct sm_stats *s = stats();
	struct sock_key peer = {};
	struct ctx_addrs a;
	struct sk_state *st;
	__u32 size = msg->size;

	/* No state means the socket was not put in the map by sockmap_sockops: leave it alone. */
	if (!msg->sk)
		return pass(s, size);
	st = bpf_sk_storage_get(&sk_state, msg->sk, 0, 0);
	if (!st || (st->flags & ST_TCP))
		return pass(s, size);
	if (!c || !c->redirect)
		goto to_tcp;
	CTX_ADDRS(msg, &a);
	if (!v6_form(a.family, a.remote4, a.remote6, peer.local_ip) ||
	    !v6_form(a.family, a.local4, a.local6, peer.remote_ip))
		goto to_tcp;
	peer.local_port = bpf_ntohl(msg->remote_port);
	peer.remote_port = msg->local_port;
	peer.netns = bpf_get_netns_cookie(msg);

	if (c->small_bytes) {
		struct sock_key me = {
			.local_port = peer.remote_port,
			.remote_port = peer.local_port,
			.netns = peer.netns,
		};
		__builtin_memcpy(me.local_ip, peer.remote_ip, sizeof(me.local_ip));
		__builtin_memcpy(me.remote_ip, peer.local_ip, sizeof(me.remote_ip));
		/* The peer sent something since our last message: our run was a conversation. */
		__u32 *heard = bpf_map_lookup_elem(&spoke, &me);
		if (heard && *heard) {
			*heard = 0;
			st->small_run = 0;
		}
		if (size < c->small_bytes)
			st->small_run++;
		else
			st->small_run = 0;
		if (st->small_run > c->small_run) {
			if (s)
				s->directions_to_tcp++;
			goto to_tcp;
		}
		__u32 *told = bpf_map_lookup_elem(&spoke, &peer);
		if (told) {
			if (!*told)
				*told = 1;
		} else {
			__u32 one = 1;
			bpf_map_update_elem(&spoke, &peer, &one, BPF_ANY);
		}
	}

	/* SK_DROP here means the peer is not in the map (not local, not in the cgroup, or no
	 * longer established): the message must then take the normal path, never be dropped. */
	if (bpf_msg_redirect_hash(msg, &sock_map, &peer, BPF_F_INGRESS) != SK_PASS)
		goto to_tcp;
	if (s) {
		s->msgs_redirected++;
		s->bytes_redirected += size;
	}
	return SK_PASS;

to_tcp:
	/* A direction that took the normal path once stays on it: the receiver reads redirected
	 * data before its TCP queue, so going back to redirecting could overtake bytes in flight. */
	if (!(st->flags & ST_TCP) && peer.netns) {
		struct sock_key me = peer_of(&peer);
		__u32 went = WENT_TCP;

		/* A passive peer that joins after this reads it and leaves with us. */
		bpf_map_update_elem(&members, &me, &went, BPF_ANY);
	}
	st->flags |= ST_TCP;
	return pass(s, size);
}
