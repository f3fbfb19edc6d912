#!/bin/bash
# vagrant/Vagrantfile is valid Ruby and describes the documented cluster:
# three Debian 12 VMs on a private network, provisioned with `make deps` and
# `make install`, the cluster manager on the first, node managers on all.
# (No Vagrant or hypervisor here: the VMs themselves are not started.)
. "$(dirname "$0")/../lib.sh"

vf=$T_ROOT/vagrant/Vagrantfile
if ! command -v ruby >/dev/null; then
	t_log "SKIP: ruby not installed (Debian package ruby)"
	exit 77
fi

t_ok "ruby -c Vagrantfile" sh -c 'ruby -c "$1" >/dev/null' sh "$vf"
# ruby -c must be able to fail for this to mean anything.
sed 's/^end$//' "$vf" >"$T_TMP/Vagrantfile.broken"
t_fail "ruby -c rejects a Vagrantfile missing its last end" ruby -c "$T_TMP/Vagrantfile.broken" 2>/dev/null

# Evaluate it against a stub of Vagrant's configuration API that records
# what it is told, so the checks read the result, not the text.
cat >"$T_TMP/stub.rb" <<'RUBY'
require "json"
class Rec
  attr_reader :calls, :children
  def initialize; @calls = []; @children = {}; end
  def method_missing(name, *args, **kw, &blk)
    s = name.to_s
    if s.end_with?("=")
      @calls << [s.chomp("="), args.first]
      return args.first
    end
    child = (@children[s] ||= Rec.new)
    @calls << [s, args, kw.transform_keys(&:to_s)] unless args.empty? && kw.empty?
    blk.call(Rec.new) if blk && s == "provider"
    blk.call(child) if blk && s != "provider" && s != "define"
    child
  end
  def respond_to_missing?(*) = true
end
$vms = {}
class Cfg < Rec
  def define(name, **kw, &blk)
    vm = Rec.new
    blk.call(vm)
    $vms[name] = { "opts" => kw.transform_keys(&:to_s), "vm" => vm }
  end
end
module Vagrant
  def self.configure(_v)
    c = Rec.new
    c.children["vm"] = Cfg.new
    yield c
    $box = c.children["vm"].calls.find { |k, _| k == "box" }&.last
  end
end
load ARGV[0]
out = { "box" => $box, "vms" => {} }
$vms.each do |name, v|
  vm = v["vm"].children["vm"]
  out["vms"][name] = {
    "primary" => v["opts"]["primary"],
    "hostname" => vm.calls.find { |k, _| k == "hostname" }&.last,
    "networks" => vm.calls.select { |k, *| k == "network" }.map { |_, a, kw| [a, kw] },
    "provision" => vm.calls.select { |k, *| k == "provision" }.map { |_, a, kw| { "name" => a[0], "type" => kw["type"], "inline" => kw["inline"] } },
  }
end
puts JSON.generate(out)
RUBY
t_ok "Vagrantfile evaluates" sh -c 'ruby "$1" "$2" >"$3"' sh "$T_TMP/stub.rb" "$vf" "$T_TMP/vf.json"
q() { jq -r "$1" "$T_TMP/vf.json"; }

t_eq "Debian 12 box" debian/bookworm64 "$(q .box)"
t_eq "three VMs" "wgcni1 wgcni2 wgcni3" "$(q '.vms | keys | join(" ")')"
for i in 1 2 3; do
	vm=".vms.wgcni$i"
	t_eq "wgcni$i: private network address" "private_network 192.168.56.1$i" \
		"$(q "$vm.networks[0] | \"\(.[0][0]) \(.[1].ip)\"")"
	t_ok "wgcni$i: provisioned with make deps" grep -q "make deps" <(q "$vm.provision[].inline")
	t_ok "wgcni$i: provisioned with make install" grep -q "make .*install" <(q "$vm.provision[].inline")
	t_ok "wgcni$i: node manager unit enabled" \
		grep -q "systemctl enable --now wgcni-node-manager.service" <(q "$vm.provision[].inline")
	t_ok "wgcni$i: node manager points at wgcni1" \
		grep -q "WGCNI_CLUSTER_MANAGER=http://192.168.56.11:8080" <(q "$vm.provision[].inline")
	t_ok "wgcni$i: its own endpoint" grep -q "WGCNI_ENDPOINT=192.168.56.1$i:51820" <(q "$vm.provision[].inline")
done
t_ok "wgcni1 runs the cluster manager" \
	grep -q "systemctl enable --now wgcni-cluster-manager.service" <(q ".vms.wgcni1.provision[].inline")
for i in 2 3; do
	t_fail "wgcni$i runs no cluster manager" \
		grep -q "wgcni-cluster-manager.service" <(q ".vms.wgcni$i.provision[].inline")
done
t_eq "wgcni1 is primary" true "$(q .vms.wgcni1.primary)"

t_done
