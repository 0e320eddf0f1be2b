# The core's tests and benchmarks: nginx is the peer of `disgrafs bench io`, curl talks to the
# server in the end-to-end tests.
need_debs curl nginx-light
