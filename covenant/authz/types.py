"""The request bodies dockerd decodes, as ``gojson`` schemas (moby ``api/types``, 20.10
and 26.1: the union of their fields, so a key matches here as it does in either).

Fields a check reads get their Go type; the rest are listed as ``SKIP`` so that key
matching (exact name first, then folding) picks the same field Go picks.
"""

from __future__ import annotations

from .gojson import BOOL, INT, STRING, UINT, Embedded, Map, Ptr, Slice, StrSlice, Struct, skipped

STRINGS = Slice(STRING)
STRING_MAP = Map(STRING)

DRIVER = Struct("Driver", (("Name", STRING), ("Options", STRING_MAP)))
MOUNT = Struct("Mount", (
    ("Type", STRING), ("Source", STRING), ("Target", STRING), ("ReadOnly", BOOL),
    *skipped("Consistency"),
    ("BindOptions", Ptr(Struct("BindOptions", (
        ("Propagation", STRING), ("NonRecursive", BOOL),
        *skipped("CreateMountpoint", "ReadOnlyNonRecursive", "ReadOnlyForceRecursive"))))),
    ("VolumeOptions", Ptr(Struct("VolumeOptions", (
        ("NoCopy", BOOL), ("Labels", STRING_MAP), *skipped("Subpath"), ("DriverConfig", Ptr(DRIVER)))))),
    *skipped("TmpfsOptions", "ClusterOptions"),
))
DEVICE = Struct("DeviceMapping", (("PathOnHost", STRING), ("PathInContainer", STRING),
                                  ("CgroupPermissions", STRING)))
ULIMIT = Struct("Ulimit", (("Name", STRING), ("Hard", INT), ("Soft", INT)))
RESTART_POLICY = Struct("RestartPolicy", (("Name", STRING), ("MaximumRetryCount", INT)))
RESOURCES = Struct("Resources", (
    ("CpuShares", INT), ("Memory", INT), ("NanoCpus", INT), ("CgroupParent", STRING),
    *skipped("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
             "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"),
    ("CpuPeriod", INT), ("CpuQuota", INT), *skipped("CpuRealtimePeriod", "CpuRealtimeRuntime"),
    ("CpusetCpus", STRING), ("CpusetMems", STRING), ("Devices", Slice(DEVICE)),
    ("DeviceCgroupRules", STRINGS), *skipped("DeviceRequests", "KernelMemory", "KernelMemoryTCP"),
    ("MemoryReservation", INT), ("MemorySwap", INT), *skipped("MemorySwappiness", "OomKillDisable"),
    ("PidsLimit", Ptr(INT)), ("Ulimits", Slice(Ptr(ULIMIT))),
    *skipped("CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth"),
))
PORT_BINDING = Struct("PortBinding", (("HostIp", STRING), ("HostPort", STRING)))
HOST_CONFIG = Struct("HostConfig", (
    ("Binds", STRINGS), *skipped("ContainerIDFile", "LogConfig"), ("NetworkMode", STRING),
    ("PortBindings", Map(Slice(PORT_BINDING))), ("RestartPolicy", RESTART_POLICY), ("AutoRemove", BOOL),
    ("VolumeDriver", STRING), ("VolumesFrom", STRINGS), *skipped("ConsoleSize", "Annotations"),
    ("CapAdd", StrSlice()), ("CapDrop", StrSlice()), ("CgroupnsMode", STRING),
    *skipped("Dns", "DnsOptions", "DnsSearch", "ExtraHosts"), ("GroupAdd", STRINGS), ("IpcMode", STRING),
    ("Cgroup", STRING), *skipped("Links", "OomScoreAdj"), ("PidMode", STRING), ("Privileged", BOOL),
    ("PublishAllPorts", BOOL), ("ReadonlyRootfs", BOOL), ("SecurityOpt", STRINGS), *skipped("StorageOpt"),
    ("Tmpfs", STRING_MAP), ("UTSMode", STRING), ("UsernsMode", STRING), ("ShmSize", INT),
    ("Sysctls", STRING_MAP), ("Runtime", STRING), *skipped("Isolation"),
    Embedded(RESOURCES),
    ("Mounts", Slice(MOUNT)), ("MaskedPaths", STRINGS), ("ReadonlyPaths", STRINGS), ("Init", Ptr(BOOL)),
))
HEALTH_CONFIG = Struct("HealthConfig", (
    ("Test", STRINGS), *skipped("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")))
CONFIG = Struct("Config", (
    *skipped("Hostname", "Domainname"), ("User", STRING),
    *skipped("AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty", "OpenStdin",
             "StdinOnce", "Env", "Cmd"),
    ("Healthcheck", Ptr(HEALTH_CONFIG)), *skipped("ArgsEscaped"), ("Image", STRING),
    ("Volumes", Map(Struct("empty", ()))),
    *skipped("WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild"),
    ("Labels", STRING_MAP), *skipped("StopSignal", "StopTimeout", "Shell"),
))
CONTAINER_CREATE = Struct("ContainerConfigWrapper", (
    Embedded(CONFIG, pointer=True),
    ("HostConfig", Ptr(HOST_CONFIG)),
    ("Cpuset", STRING),
    *skipped("NetworkingConfig"),
    Embedded(HOST_CONFIG, pointer=True),
))
EXEC_CREATE = Struct("ExecConfig", (
    ("User", STRING), ("Privileged", BOOL),
    *skipped("Tty", "ConsoleSize", "AttachStdin", "AttachStderr", "AttachStdout", "Detach", "DetachKeys",
             "Env", "WorkingDir", "Cmd"),
))
CONTAINER_UPDATE = Struct("UpdateConfig", (Embedded(RESOURCES), ("RestartPolicy", RESTART_POLICY)))
VOLUME_CREATE = Struct("VolumeCreateBody", (
    ("Name", STRING), ("Driver", STRING), ("DriverOpts", STRING_MAP), ("Labels", STRING_MAP),
    *skipped("ClusterVolumeSpec"),
))

# -- swarm services (api/types/swarm) --------------------------------------------------------
PRIVILEGES = Struct("Privileges", (
    ("CredentialSpec", Ptr(Struct("CredentialSpec", (("Config", STRING), ("File", STRING),
                                                     ("Registry", STRING))))),
    ("SELinuxContext", Ptr(Struct("SELinuxContext", (("Disable", BOOL), ("User", STRING), ("Role", STRING),
                                                     ("Type", STRING), ("Level", STRING))))),
    ("Seccomp", Ptr(Struct("SeccompOpts", (("Mode", STRING), *skipped("Profile"))))),
    ("AppArmor", Ptr(Struct("AppArmorOpts", (("Mode", STRING),)))),
    ("NoNewPrivileges", BOOL),
))
CONTAINER_SPEC = Struct("ContainerSpec", (
    ("Image", STRING), ("Labels", STRING_MAP), *skipped("Command", "Args", "Hostname", "Env", "Dir"),
    ("User", STRING), ("Groups", STRINGS), ("Privileges", Ptr(PRIVILEGES)), ("Init", Ptr(BOOL)),
    *skipped("StopSignal", "TTY", "OpenStdin"), ("ReadOnly", BOOL), ("Mounts", Slice(MOUNT)),
    *skipped("StopGracePeriod"), ("Healthcheck", Ptr(HEALTH_CONFIG)),
    *skipped("Hosts", "DNSConfig", "Secrets", "Configs", "Isolation"), ("Sysctls", STRING_MAP),
    ("CapabilityAdd", STRINGS), ("CapabilityDrop", STRINGS), ("Ulimits", Slice(Ptr(ULIMIT))),
    *skipped("OomScoreAdj"),
))
PLUGIN_SPEC = Struct("PluginSpec", (("name", STRING), ("remote", STRING), *skipped("privileges", "disabled",
                                                                                     "env")))
LIMIT = Struct("Limit", (("NanoCPUs", INT), ("MemoryBytes", INT), *skipped("GenericResources"),
                         ("Pids", INT)))
NETWORK_ATTACHMENT = Struct("NetworkAttachmentConfig", (("Target", STRING), *skipped("Aliases",
                                                                                      "DriverOpts")))
TASK_SPEC = Struct("TaskSpec", (
    ("ContainerSpec", Ptr(CONTAINER_SPEC)), ("PluginSpec", Ptr(PLUGIN_SPEC)),
    *skipped("NetworkAttachmentSpec"),
    ("Resources", Ptr(Struct("ResourceRequirements", (("Limits", Ptr(LIMIT)),
                                                      ("Reservations", Ptr(LIMIT)))))),
    *skipped("RestartPolicy", "Placement"), ("Networks", Slice(NETWORK_ATTACHMENT)),
    *skipped("LogDriver", "ForceUpdate"), ("Runtime", STRING),
))
PORT_CONFIG = Struct("PortConfig", (*skipped("Name"), ("Protocol", STRING), ("TargetPort", UINT),
                                   ("PublishedPort", UINT), ("PublishMode", STRING)))
ENDPOINT_SPEC = Struct("EndpointSpec", (*skipped("Mode"), ("Ports", Slice(PORT_CONFIG))))
SERVICE_SPEC = Struct("ServiceSpec", (
    Embedded(Struct("Annotations", (("Name", STRING), ("Labels", STRING_MAP)))),
    ("TaskTemplate", TASK_SPEC), *skipped("Mode", "UpdateConfig", "RollbackConfig"),
    ("Networks", Slice(NETWORK_ATTACHMENT)), ("EndpointSpec", Ptr(ENDPOINT_SPEC)),
))
