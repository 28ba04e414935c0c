"""Finding our own container from the mount table (recorded from a real container)."""

from covenant.identity import container_id_from_cgroup, container_id_from_mountinfo

CID = "3b8e0b4f1c1a9a3c5f7e2d4b6a8c0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d"
MOUNTINFO = f"""\
623 540 0:52 / / rw,relatime master:301 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
624 623 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
632 623 254:0 /var/lib/docker/containers/{"f" * 64}/mounts/shm /dev/shm rw - ext4 /dev/vda rw
633 623 254:0 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
634 623 254:0 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""


def test_container_id_from_mountinfo():
    assert container_id_from_mountinfo(MOUNTINFO) == CID


def test_host_mount_table_has_no_container():
    host = "\n".join(line for line in MOUNTINFO.splitlines() if "/etc/" not in line)
    assert container_id_from_mountinfo(host) is None


def test_container_id_from_cgroup_v1_and_systemd_driver():
    assert container_id_from_cgroup(f"12:memory:/docker/{CID}\n") == CID
    assert container_id_from_cgroup(f"0::/system.slice/docker-{CID}.scope\n") == CID
    assert container_id_from_cgroup("0::/\n") is None
