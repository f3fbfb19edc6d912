# wgcni cluster managers on etcd (--datastore etcd): several instances, all
# active, on different clients, sharing their state through an etcd v3
# cluster that runs outside this job (three members, see docs/ha.md). No
# host volume: the state is in etcd, so an instance may be rescheduled
# anywhere. Nomad's service discovery publishes every instance as
# "wgcni-cluster-manager"; node-manager.hcl gives the node managers all of
# them (--cluster-manager URL1,URL2,..) and they fail over between them.
#
#   nomad job run -var 'etcd_endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379' \
#     nomad/cluster-manager-etcd.hcl
#
# Every instance must run with the same --cluster-cidr and prefix lengths
# (etcd keeps them in P/config and refuses a manager whose flags differ).
variable "cluster_cidr" {
  type    = string
  default = "10.100.0.0/16"
}

variable "count" {
  type    = number
  default = 2
}

variable "etcd_endpoints" {
  type = string
}

variable "etcd_prefix" {
  type    = string
  default = "/wgcni"
}

job "wgcni-cluster-manager" {
  type = "service"

  group "cluster-manager" {
    count = var.count

    # One per client: losing a machine loses one instance.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      mode = "host"
      port "api" {
        static = 8080
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "2s"
      mode     = "delay"
    }

    # Replace instances one at a time: the others keep answering.
    update {
      max_parallel     = 1
      min_healthy_time = "10s"
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
      driver = "exec"
      user   = "nobody"

      # etcd's TLS client certificate from Nomad Variables (keys ca, cert,
      # key under nomad/jobs/wgcni-cluster-manager), private to the task.
      template {
        destination = "secrets/etcd-ca.pem"
        data        = "{{ with nomadVar \"nomad/jobs/wgcni-cluster-manager\" }}{{ .ca }}{{ end }}"
        perms       = "0600"
      }
      template {
        destination = "secrets/etcd-client.pem"
        data        = "{{ with nomadVar \"nomad/jobs/wgcni-cluster-manager\" }}{{ .cert }}{{ end }}"
        perms       = "0600"
      }
      template {
        destination = "secrets/etcd-client.key"
        data        = "{{ with nomadVar \"nomad/jobs/wgcni-cluster-manager\" }}{{ .key }}{{ end }}"
        perms       = "0600"
      }

      config {
        command = "/usr/local/bin/wgcni-cluster-manager"
        args = [
          "--listen", "0.0.0.0:${NOMAD_PORT_api}",
          "--datastore", "etcd",
          "--etcd-endpoints", var.etcd_endpoints,
          "--etcd-prefix", var.etcd_prefix,
          "--etcd-ca-file", "${NOMAD_SECRETS_DIR}/etcd-ca.pem",
          "--etcd-cert-file", "${NOMAD_SECRETS_DIR}/etcd-client.pem",
          "--etcd-key-file", "${NOMAD_SECRETS_DIR}/etcd-client.key",
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
