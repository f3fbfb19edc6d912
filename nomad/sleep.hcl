# Four busybox containers on the wgcni network: Nomad creates each
# allocation's network namespace and runs the CNI conflist named "wgnet"
# (the client's cni_config_dir holds 10-wgcni.conflist, see README.md).
job "sleep" {
  type = "service"

  group "sleep" {
    count = 4

    network {
      mode = "cni/wgnet"
    }

    task "sleep" {
      driver = "docker"

      config {
        image   = "busybox:1.36"
        command = "sleep"
        args    = ["infinity"]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
