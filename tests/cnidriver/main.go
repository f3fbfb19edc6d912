// cnidriver drives CNI plugins through libcni exactly the way containerd and
// CRI-O do (AddNetworkList / CheckNetworkList / DelNetworkList, with the
// result cache libcni keeps for DEL and CHECK). It is the closest real CNI
// client Debian ships sources for; there is no cnitool binary.
//
//	cnidriver add|check|del CONFLIST CONTAINERID NETNS_PATH IFNAME
//	cnidriver gc CONFLIST [CONTAINERID/IFNAME ...]   (valid attachments)
//	cnidriver status CONFLIST
//	cnidriver version CONFLIST
//
// Environment: CNI_PATH (plugin directories, ':' separated, required),
// CNI_ARGS ("K=V;K=V", passed on as libcni runtime args),
// CNI_CACHE_DIR (libcni result cache, default /var/lib/cni).
//
// libcni 1.1.2 (Debian 12) has no GCNetworkList or GetStatusNetworkList:
// "gc" and "status" execute the plugins directly with CNI_COMMAND=GC/STATUS
// and the stdin libcni 1.2 would build (name, cniVersion 1.1.0 and, for GC,
// cni.dev/valid-attachments), through libcni's own invoke package.
//
// Results go to stdout as JSON; errors to stderr, exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

const timeout = 60 * time.Second

type command struct {
	name  string
	nargs int // arguments after CONFLIST; -1: any number
	run   func(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error
}

var commands = []command{
	{"add", 3, cmdAdd},
	{"check", 3, cmdCheck},
	{"del", 3, cmdDel},
	{"gc", -1, cmdGC},
	{"status", 0, cmdStatus},
	{"version", 0, cmdVersion},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s add|check|del CONFLIST CONTAINERID NETNS_PATH IFNAME\n"+
		"       %s gc CONFLIST [CONTAINERID/IFNAME ...]\n"+
		"       %s status|version CONFLIST\n", os.Args[0], os.Args[0], os.Args[0])
	os.Exit(2)
}

func runtimeConf(args []string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: args[0], NetNS: args[1], IfName: args[2]}
	if env := os.Getenv("CNI_ARGS"); env != "" {
		for _, kv := range strings.Split(env, ";") {
			if p := strings.SplitN(kv, "=", 2); len(p) == 2 {
				rt.Args = append(rt.Args, [2]string{p[0], p[1]})
			}
		}
	}
	return rt
}

func cmdAdd(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	res, err := cni.AddNetworkList(ctx, list, runtimeConf(args))
	if err != nil {
		return err
	}
	if err := res.Print(); err != nil {
		return err
	}
	fmt.Println()
	return nil
}

func cmdCheck(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	return cni.CheckNetworkList(ctx, list, runtimeConf(args))
}

func cmdDel(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	return cni.DelNetworkList(ctx, list, runtimeConf(args))
}

// pluginConf builds one plugin's stdin as libcni does: the plugin's own
// object plus the list's name and the requested cniVersion.
func pluginConf(list *libcni.NetworkConfigList, i int, version string, extra map[string]interface{}) ([]byte, error) {
	conf := map[string]interface{}{}
	if err := json.Unmarshal(list.Plugins[i].Bytes, &conf); err != nil {
		return nil, fmt.Errorf("decode plugin %d of %q: %w", i, list.Name, err)
	}
	conf["name"] = list.Name
	conf["cniVersion"] = version
	for k, v := range extra {
		conf[k] = v
	}
	return json.Marshal(conf)
}

func execEach(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, verb string, extra map[string]interface{}) error {
	for i, p := range list.Plugins {
		path, err := invoke.FindInPath(p.Network.Type, cni.Path)
		if err != nil {
			return err
		}
		conf, err := pluginConf(list, i, "1.1.0", extra)
		if err != nil {
			return err
		}
		args := &invoke.Args{Command: verb, Path: strings.Join(cni.Path, string(os.PathListSeparator))}
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf, args, nil); err != nil {
			return fmt.Errorf("%s of plugin %q: %w", verb, p.Network.Type, err)
		}
	}
	return nil
}

func cmdGC(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	valid := []map[string]string{}
	for _, a := range args {
		p := strings.SplitN(a, "/", 2)
		if len(p) != 2 {
			return fmt.Errorf("attachment `%s' is not CONTAINERID/IFNAME", a)
		}
		valid = append(valid, map[string]string{"containerID": p[0], "ifname": p[1]})
	}
	return execEach(ctx, cni, list, "GC", map[string]interface{}{"cni.dev/valid-attachments": valid})
}

func cmdStatus(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	return execEach(ctx, cni, list, "STATUS", nil)
}

func cmdVersion(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, args []string) error {
	out := map[string]interface{}{}
	for _, p := range list.Plugins {
		info, err := cni.GetVersionInfo(ctx, p.Network.Type)
		if err != nil {
			return err
		}
		out[p.Network.Type] = info.SupportedVersions()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == os.Args[1] {
			cmd = &commands[i]
		}
	}
	if cmd == nil || (cmd.nargs >= 0 && len(os.Args)-3 != cmd.nargs) {
		usage()
	}
	cniPath := os.Getenv("CNI_PATH")
	if cniPath == "" {
		fmt.Fprintln(os.Stderr, "cnidriver: CNI_PATH is not set")
		os.Exit(1)
	}
	list, err := libcni.ConfListFromFile(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: load conflist `%s': %v\n", os.Args[2], err)
		os.Exit(1)
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = libcni.CacheDir
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cmd.run(ctx, cni, list, os.Args[3:]); err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: %s: %v\n", strings.Join(append([]string{cmd.name}, os.Args[3:]...), " "), err)
		os.Exit(1)
	}
}
