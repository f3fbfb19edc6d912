# wgcni — WireGuard CNI plugin suite.
#
# `make help` lists the targets.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
CNIBINDIR ?= /opt/cni/bin
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
BUILDDIR ?= build

VERSION := 0.1.0

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := libcurl libmicrohttpd libprotobuf-c libnl-3.0 libnl-genl-3.0 \
	libnl-route-3.0 libip4tc libip6tc jansson sqlite3 libsodium

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes \
	-Wmissing-prototypes -Wshadow -Wformat=2 -Wno-unused-parameter \
	-MMD -MP -Ipkg -Iproto/gen -DWGCNI_VERSION='"$(VERSION)"'
CFLAGS += $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread
# A library is NEEDED only if used: wgcni and wgcnictl never load libmicrohttpd.
LDFLAGS += -Wl,--as-needed
# The plugin is started for every ADD and DEL: its libraries but libc are
# linked in, which spares the loader seven objects per start (PLUGIN_STATIC=0
# links them as shared ones). libnl is LGPL-2.1: this source tree is what
# relinks it.
PLUGIN_STATIC ?= 1
ifeq ($(PLUGIN_STATIC),1)
PLUGIN_LDLIBS := -Wl,-Bstatic -lnl-genl-3 -lnl-route-3 -lnl-3 -lprotobuf-c -ljansson \
	-lsodium -Wl,-Bdynamic -lpthread
else
PLUGIN_LDLIBS = $(LDLIBS)
endif

# Tests are built a second time with the sanitizers, apart from the release
# build, so `make check` never ships sanitized binaries.
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

PROTOS := proto/wgcni/cluster/v1/cluster.proto proto/wgcni/node/v1/node.proto
PROTO_C := $(patsubst proto/%.proto,proto/gen/%.pb-c.c,$(PROTOS))

PKG_SRC := $(sort $(wildcard pkg/*.c)) $(PROTO_C)
CM_SRC := $(sort $(wildcard cluster-manager/*.c))
NM_SRC := $(sort $(wildcard node-manager/*.c))
CNI_SRC := $(sort $(wildcard cni/*.c))
CTL_SRC := $(sort $(wildcard wgcnictl/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

obj = $(patsubst %.c,$(2)/obj/%.o,$(1))

REL := $(BUILDDIR)
SAN := $(BUILDDIR)/asan

BINS := wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl

all: $(addprefix $(REL)/bin/,$(BINS)) ## Build the binaries into build/bin

# $(1) = build root, $(2) = extra CFLAGS
#
# Each binary is its main.o and an archive of the rest of its directory
# (lib<bin>.a), so unit tests link the binaries' own code without a main.
define build_tree
$(1)/obj/%.o: %.c
	$$(call msg,CC,$$<)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $(2) -c -o $$@ $$<

$(1)/libwgcni.a: $$(call obj,$$(PKG_SRC),$(1))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

$(1)/libcm.a: $$(call obj,$$(filter-out %/main.c,$$(CM_SRC)),$(1))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

$(1)/libnm.a: $$(call obj,$$(filter-out %/main.c,$$(NM_SRC)),$(1))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

$(1)/libcni.a: $$(call obj,$$(filter-out %/main.c,$$(CNI_SRC)),$(1))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

$(1)/libctl.a: $$(call obj,$$(filter-out %/main.c,$$(CTL_SRC)),$(1))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

$(1)/bin/wgcni-cluster-manager: $(1)/obj/cluster-manager/main.o $(1)/libcm.a $(1)/libwgcni.a
	$$(call msg,LD,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)

$(1)/bin/wgcni-node-manager: $(1)/obj/node-manager/main.o $(1)/libnm.a $(1)/libwgcni.a
	$$(call msg,LD,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)

$(1)/bin/wgcni: $(1)/obj/cni/main.o $(1)/libcni.a $(1)/libwgcni.a
	$$(call msg,LD,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $(2) $$(LDFLAGS) -o $$@ $$^ $$(PLUGIN_LDLIBS)

$(1)/bin/wgcnictl: $(1)/obj/wgcnictl/main.o $(1)/libctl.a $(1)/libwgcni.a
	$$(call msg,LD,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef

$(eval $(call build_tree,$(REL),))
$(eval $(call build_tree,$(SAN),$(SANFLAGS)))

# Unit tests: tests/unit/test_<name>.c links libwgcni.a; test_cni_*.c,
# test_cm_*.c, test_nm_*.c and test_ctl_*.c / test_wgcnictl_*.c also link
# their binary's archive and see its directory's headers; their extra link
# flags (e.g. -Wl,--wrap=sym to stub a call) go in UNIT_LDFLAGS_test_<name>.
$(SAN)/tests/%: tests/unit/%.c $(SAN)/libwgcni.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(SAN)/libwgcni.a $(LDLIBS) -lcmocka

# $(1) = test name prefix, $(2) = the binary's source directory, $(3) = its archive
define unit_rule
$(SAN)/tests/test_$(1)_%: tests/unit/test_$(1)_%.c $(SAN)/$(3) $(SAN)/libwgcni.a
	$$(call msg,LD,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CFLAGS) $$(SANFLAGS) -Itests/unit -I$(2) $$(LDFLAGS) -o $$@ $$< $(SAN)/$(3) $(SAN)/libwgcni.a $$(LDLIBS) -lcmocka $$(UNIT_LDFLAGS_$$(notdir $$@))
endef

$(eval $(call unit_rule,cni,cni,libcni.a))
$(eval $(call unit_rule,cm,cluster-manager,libcm.a))
$(eval $(call unit_rule,nm,node-manager,libnm.a))
$(eval $(call unit_rule,ctl,wgcnictl,libctl.a))
$(eval $(call unit_rule,wgcnictl,wgcnictl,libctl.a))

# The node-peer diff runs against a fake interface: wg_get/wg_set stubbed.
UNIT_LDFLAGS_test_nm_peers := -Wl,--wrap=wg_get -Wl,--wrap=wg_set

UNIT_BINS := $(patsubst tests/unit/%.c,$(SAN)/tests/%,$(UNIT_SRC))

sanitized: $(addprefix $(SAN)/bin/,$(BINS)) $(UNIT_BINS) ## Build binaries and unit tests with ASan/UBSan

proto: ## Regenerate the protobuf-c code in proto/gen from proto/
	$(Q)rm -rf proto/gen && mkdir -p proto/gen
	$(Q)cd proto && protoc-c --c_out=gen $(patsubst proto/%,%,$(PROTOS))

check-proto: ## Fail if proto/gen differs from a fresh protoc-c run
	$(Q)tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd proto && protoc-c --c_out="$$tmp" $(patsubst proto/%,%,$(PROTOS))) && \
	if diff -ru "$$tmp" proto/gen; then echo "proto: generated code is up to date"; \
	else echo "proto: proto/gen is stale, run 'make proto'" >&2; exit 1; fi

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang apart from the
# library so each links only what it fuzzes. FUZZ_SECONDS per harness.
# tests/fuzz/corpus/<harness>/, when present, seeds it (read, never written).
FUZZ_SECONDS ?= 15
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-Ipkg -Iproto/gen $(shell $(PKG_CONFIG) --cflags jansson libprotobuf-c libsodium 2>/dev/null)
FUZZ_LIBS := $(shell $(PKG_CONFIG) --libs jansson libprotobuf-c libsodium 2>/dev/null)

$(BUILDDIR)/fuzz/fuzz_parsers: tests/fuzz/fuzz_parsers.c pkg/ipnet.c pkg/key.c pkg/opts.c
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(BUILDDIR)/fuzz/fuzz_pjson: tests/fuzz/fuzz_pjson.c pkg/pjson.c $(PROTO_C)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# The netlink parser needs most of the library: build all of pkg/ with clang.
$(BUILDDIR)/fuzz/fuzz_wg_genl: tests/fuzz/fuzz_wg_genl.c $(PKG_SRC)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null) -o $@ $^ $(LDLIBS)

$(BUILDDIR)/fuzz/fuzz_promtext: tests/fuzz/fuzz_promtext.c wgcnictl/promtext.c wgcnictl/fmt.c
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -Iwgcnictl -o $@ $^ $(FUZZ_LIBS)

# The CNI network configuration parser (stdin from any runtime) and the result
# built from its prevResult; the backend names it checks live in pkg/wg.c,
# which needs most of pkg/.
$(BUILDDIR)/fuzz/fuzz_cni_conf: tests/fuzz/fuzz_cni_conf.c cni/conf.c cni/result.c cni/util.c $(PKG_SRC)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -Icni $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null) -o $@ $^ $(LDLIBS)

# What the node manager's socket sends the plugin (its HTTP/1.1 client).
$(BUILDDIR)/fuzz/fuzz_nmhttp: tests/fuzz/fuzz_nmhttp.c cni/nmhttp.c pkg/buf.c pkg/sys.c
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -Icni -o $@ $^ $(FUZZ_LIBS)

$(BUILDDIR)/fuzz/fuzz_etcd_codec: tests/fuzz/fuzz_etcd_codec.c pkg/etcd_codec.c
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

FUZZERS := $(BUILDDIR)/fuzz/fuzz_parsers $(BUILDDIR)/fuzz/fuzz_pjson \
	$(BUILDDIR)/fuzz/fuzz_wg_genl $(BUILDDIR)/fuzz/fuzz_promtext \
	$(BUILDDIR)/fuzz/fuzz_cni_conf $(BUILDDIR)/fuzz/fuzz_etcd_codec \
	$(BUILDDIR)/fuzz/fuzz_nmhttp

fuzz: $(FUZZERS) ## Run each libFuzzer harness for FUZZ_SECONDS (default 15)
	$(Q)for f in $(FUZZERS); do \
		mkdir -p $$f.corpus && \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $$f.corpus \
			$$(ls -d tests/fuzz/corpus/$$(basename $$f) 2>/dev/null) 2>$$f.log || \
		{ tail -40 $$f.log; echo "fuzz: $$f found a crash"; exit 1; }; \
		echo "fuzz: $$(basename $$f): $$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' $$f.log) runs, no crash"; \
	done

check-unit: $(UNIT_BINS) ## Run the cmocka unit tests under ASan/UBSan
	$(Q)tests/run-unit.sh $(UNIT_BINS)

check-integration: all sanitized ## Run the network-namespace integration tests
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) tests/run.sh

check: deps ## Install deps, then run every test
	$(Q)$(MAKE) --no-print-directory check-proto
	$(Q)$(MAKE) --no-print-directory all sanitized
	$(Q)$(MAKE) --no-print-directory check-unit
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	$(Q)$(MAKE) --no-print-directory check-integration

deps: ## Install the Debian packages listed in .ci/apt-packages
	$(Q)pkgs=$$(grep -v '^#' .ci/apt-packages | xargs); \
	if dpkg-query -W -f='$${Status}\n' $$pkgs 2>/dev/null | grep -qv 'install ok installed' || \
	   [ $$(dpkg-query -W -f='$${Status}\n' $$pkgs 2>/dev/null | wc -l) -ne $$(echo $$pkgs | wc -w) ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$pkgs; \
	else echo "deps: all packages installed"; fi

check-e2e: all ## Run only the multi-node end-to-end scenarios (userspace backend)
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) TESTS=e2e tests/run.sh

check-kernel: all ## Run the end-to-end scenarios against the kernel backend in a qemu VM
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) TESTS=kernel tests/run.sh

demo: deps all ## A 3-node cluster in namespaces with containers attached by the real plugin
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) KEEP=$(KEEP) tests/e2e/demo.sh up

demo-down: ## Tear down a demo left running by `make demo KEEP=1`
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) tests/e2e/demo.sh down

image: all ## Build the container image (podman, offline) from build/bin; prints its size
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) kubernetes/image/build.sh

install: all ## Install binaries, conflist, systemd units (DESTDIR, PREFIX honoured)
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" \
		BINDIR="$(BINDIR)" CNIBINDIR="$(CNIBINDIR)" SYSCONFDIR="$(SYSCONFDIR)" \
		UNITDIR="$(UNITDIR)" dist/install.sh

clean: ## Remove build output
	rm -rf $(BUILDDIR)

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'


.PHONY: fuzz image
.PHONY: all sanitized proto check check-proto check-unit check-integration check-e2e check-kernel \
	demo demo-down deps install clean help
.SECONDARY:

-include $(shell find $(BUILDDIR) -name '*.d' 2>/dev/null)

# The node-manager simulator that bench/cluster_scale.sh drives (the script
# builds it itself when run alone). `make bench NODES=10000 METHODS="listpeers watch"`
SIM_SRC := $(sort $(wildcard bench/sim/*.c)) proto/gen/wgcni/cluster/v1/cluster.pb-c.c
$(REL)/bench/wgcni-cluster-sim: $(SIM_SRC) $(wildcard bench/sim/*.h)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(SIM_SRC) $(LDLIBS) -lm
bench: all $(REL)/bench/wgcni-cluster-sim ## Cluster manager at scale (bench/cluster_scale.sh)
	$(Q)BUILDDIR=$(abspath $(BUILDDIR)) SIM=$(abspath $(REL)/bench/wgcni-cluster-sim) bench/cluster_scale.sh
.PHONY: bench
