# wgcni node manager as a Nomad system job: one per client. It manages the
# host's network (WireGuard interface, routes, firewall chains, IP forwarding)
# and serves the CNI plugin on /run/wgcni/node-manager.sock, so it runs in the
# host's network namespace and file system with raw_exec (enable it on the
# clients, see README.md); exec's chroot would hide /run, /dev/net/tun and
# /var/lib/wgcni.
job "wgcni-node-manager" {
  type = "system"

  group "node-manager" {
    network {
      mode = "host"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "2s"
      mode     = "delay"
    }

    task "node-manager" {
      driver = "raw_exec"

      # The cluster managers' addresses from Nomad's service discovery,
      # every instance in one comma-separated list (one with SQLite, several
      # with cluster-manager-etcd.hcl: the node manager fails over between
      # them), re-rendered (and the task restarted) when one moves.
      template {
        destination = "local/cluster-manager.env"
        env         = true
        change_mode = "restart"
        data        = <<EOT
{{ with nomadService "wgcni-cluster-manager" }}WGCNI_CLUSTER_MANAGER={{ range $i, $s := . }}{{ if $i }},{{ end }}http://{{ $s.Address }}:{{ $s.Port }}{{ end }}
{{ end }}
EOT
      }

      env {
        WGCNI_NODE_NAME  = "${node.unique.name}"
        WGCNI_ENDPOINT   = "${attr.unique.network.ip-address}:51820"
        WGCNI_STATE_DIR  = "/var/lib/wgcni/node"
        WGCNI_SOCKET     = "/run/wgcni/node-manager.sock"
        WGCNI_INTERFACE  = "wgcni0"
        WGCNI_LISTEN_PORT = "51820"
        WGCNI_BACKEND    = "auto"
      }

      config {
        command = "/usr/local/bin/wgcni-node-manager"
      }

      # SIGTERM: the node manager stops without touching the interface, so
      # kernel-backend tunnels survive a restart of this task.
      kill_signal  = "SIGTERM"
      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
