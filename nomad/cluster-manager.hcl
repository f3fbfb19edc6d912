# wgcni cluster manager as a Nomad service job: one instance, its SQLite state
# on a host volume so it survives rescheduling on the same client. Nomad's
# native service discovery publishes it as "wgcni-cluster-manager" for the
# node managers (node-manager.hcl).
variable "cluster_cidr" {
  type    = string
  default = "10.100.0.0/16"
}

job "wgcni-cluster-manager" {
  type = "service"

  group "cluster-manager" {
    count = 1

    network {
      mode = "host"
      port "api" {
        static = 8080
      }
    }

    # Client config: host_volume "wgcni-cluster" { path = "/var/lib/wgcni/cluster" }
    # (see README.md). The state must outlive the allocation.
    volume "state" {
      type   = "host"
      source = "wgcni-cluster"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "2s"
      mode     = "delay"
    }

    service {
      name     = "wgcni-cluster-manager"
      provider = "nomad"
      port     = "api"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "cluster-manager" {
      # Needs no privileges: exec isolates it, and port 8080 needs no capability.
      driver = "exec"
      user   = "nobody"

      volume_mount {
        volume      = "state"
        destination = "/var/lib/wgcni/cluster"
      }

      config {
        command = "/usr/local/bin/wgcni-cluster-manager"
        args = [
          "--listen", "0.0.0.0:${NOMAD_PORT_api}",
          "--state-dir", "/var/lib/wgcni/cluster",
          "--cluster-cidr", var.cluster_cidr,
        ]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
