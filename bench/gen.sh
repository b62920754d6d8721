#!/usr/bin/env bash
# gen.sh - generate a management-node-like tree for the benchmark.
#
#   bench/gen.sh DIR full|quick|manyfiles|manyfiles-quick [SEED]
#
# DIR must not exist or be empty.  The same SCALE and SEED always give a
# byte-identical tree (names, contents, modes, symlinks; mtimes are left to
# the clock).  Incompressible bytes come from AES-128-CTR over zeros keyed by
# SEED and the file's role (openssl), text from a perl generator seeded by
# MD5(SEED-part).  Layout of full and quick (sizes: full / quick):
#
#   etc/xcat/{ca,cert,hostkeys}, root/.xcat   PEM-looking credentials, keys 0600
#   etc/hosts                                 5,000 lines
#   etc/resolv.conf
#   install/iso/big.iso                       512 MiB / 64 MiB  incompressible
#   install/iso/{rhels,sles}-*.iso            2 x 512 MiB / 2 x 32 MiB  incompressible
#   install/netboot/rhels9.4/x86_64/compute/rootimg.cpio
#                                             200 MiB / 24 MiB text-like, repetitive
#   install/rhels9.4/x86_64/BaseOS/Packages/*.rpm
#                                             256 / 32 files, 100 KiB-5 MiB, incompressible
#   install/custom/install/*/*.tmpl           3,000 / 600 templates, 1-8 KiB text
#   install/postscripts/{,custom/}*           1,000 / 200 scripts 0755, 1-8 KiB text
#   a few symlinks
#
# manyfiles: 100,000 files of 100 B-4 KiB in 100 x 100 directories
# (manyfiles-quick: 2,000 files in 2 x 100 directories).
set -euo pipefail
export LC_ALL=C
umask 022

usage() {
	echo "usage: $0 DIR full|quick|manyfiles|manyfiles-quick [SEED]" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
dir=$1
scale=$2
seed=${3:-hamnsync}
case "$seed" in
*[!A-Za-z0-9._-]*) echo "gen.sh: SEED may hold only A-Za-z0-9._-" >&2; exit 2 ;;
esac

MiB=$((1024 * 1024))
case "$scale" in
full)
	big=$((512 * MiB)); iso=$((512 * MiB)); img=$((200 * MiB))
	rpms=256; tmpls=3000; scripts=1000 ;;
quick)
	big=$((64 * MiB)); iso=$((32 * MiB)); img=$((24 * MiB))
	rpms=32; tmpls=600; scripts=200 ;;
manyfiles) top_dirs=100 ;;
manyfiles-quick) top_dirs=2 ;;
*) usage ;;
esac

if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
	echo "gen.sh: $dir exists and is not empty" >&2
	exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# rand_bytes SIZE TAG > FILE: SIZE incompressible bytes, a function of
# SEED and TAG only.  CTR mode: output length equals input length.
rand_bytes() {
	head -c "$1" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -pbkdf2 -iter 1 \
			-pass "pass:$seed-$2" 2>/dev/null
}

# The text generator: one perl program, several modes.
textgen() {
	perl -e '
use strict;
use warnings;
use Digest::MD5 qw(md5);
use MIME::Base64 qw(encode_base64);

my ($mode, $dir, $seed, @arg) = @ARGV;

sub reseed { srand(unpack("N", md5("$seed-$_[0]"))); }
sub irand { my ($lo, $hi) = @_; return $lo + int(rand($hi - $lo + 1)); }

my @words = qw(
  if then else fi for do done echo exit return local export case esac
  rpm yum dnf zypper chkconfig systemctl enable disable start stop restart
  /install /tftpboot /etc/xcat /var/log/xcat /opt/xcat /root/.xcat
  xcat xcatd xCAT nodeset makedhcp makedns makehosts makeconservercf
  nodelist noderes nodetype site networks osimage linuximage postscripts
  compute service storage login gpu node mgt ipmi bmc eth0 eth1 ib0 bond0
  hostname domain nameservers ntpservers master tftpserver nfsserver
  kernel initrd rootimg netboot install statelite diskless diskfull
  %packages %post %pre %end @core @base kickstart autoyast preseed
  partition part clearpart bootloader network --bootproto=dhcp --onboot=yes
  lang keyboard timezone rootpw firewall selinux --disabled reboot
  grep sed awk cat cp mv rm mkdir chmod chown ln tar gzip cpio mount umount
  -rf -p -f -q -n -v 0755 0644 0600 /dev/null 2>&1 >> || && $NODE $MASTER
  $OSVER $ARCH $PROFILE $NODESETSTATE $MONSERVER $INSTALLDIR $TFTPDIR
  ssh scp sshd authorized_keys known_hosts id_rsa ssh-keygen
  ntp chrony syslog rsyslog logrotate cron crontab anacron
  mlnx ofed lustre gpfs slurm munge lsf nvidia cuda infiniband opensm
);

# A pool of text lines, shared by every text file of one part.
my @pool;
sub mkpool {
	my ($n) = @_;
	@pool = ();
	for my $i (1 .. $n) {
		my $w = irand(3, 12);
		my $r = rand();
		my $line;
		if ($r < 0.1) {
			$line = "# " . join(" ", map { $words[int(rand(@words))] } 1 .. $w);
		} elsif ($r < 0.2) {
			$line = sprintf("%s=%d.%d.%d.%d", uc($words[int(rand(@words))] =~ s/\W//gr || "VAR"),
			    10, irand(0, 255), irand(0, 255), irand(1, 254));
		} else {
			$line = (" " x (4 * irand(0, 3))) .
			    join(" ", map { $words[int(rand(@words))] } 1 .. $w);
		}
		push @pool, "$line\n";
	}
}

# text(SIZE): SIZE bytes of pool lines, the last one cut to fit, ending in
# a newline.
sub text {
	my ($size) = @_;
	die "text: empty pool\n" unless @pool;
	my $s = "";
	$s .= $pool[int(rand(@pool))] while length($s) < $size;
	$s = substr($s, 0, $size - 1) . "\n";
	return $s;
}

sub put {
	my ($path, $data, $mode) = @_;
	open(my $fh, ">", $path) or die "$path: $!\n";
	print $fh $data or die "$path: $!\n";
	close($fh) or die "$path: $!\n";
	chmod($mode, $path) or die "$path: $!\n" if defined $mode;
}

sub mkd {
	my ($path, $mode) = @_;
	my $p = "";
	for my $c (split m{/}, $path) {
		$p .= "$c/";
		mkdir($p) unless -d $p;
	}
	chmod($mode, $path) if defined $mode;
}

sub pem {
	my ($label, $n) = @_;
	my $raw = join("", map { chr(int(rand(256))) } 1 .. $n);
	my $b = encode_base64($raw, "");
	$b =~ s/(.{64})/$1\n/g;
	$b .= "\n" unless $b =~ /\n\z/;
	return "-----BEGIN $label-----\n$b-----END $label-----\n";
}

if ($mode eq "creds") {
	reseed("creds");
	mkpool(256);
	chdir($dir) or die "$dir: $!\n";
	mkd("etc/xcat/ca/private", 0700);
	mkd("etc/xcat/ca/certs");
	mkd("etc/xcat/cert");
	mkd("etc/xcat/hostkeys");
	mkd("root/.xcat", 0700);
	put("etc/xcat/ca/ca-cert.pem", pem("CERTIFICATE", 1300));
	put("etc/xcat/ca/private/ca-key.pem", pem("PRIVATE KEY", 1700), 0600);
	put("etc/xcat/ca/index", join("", map { sprintf("V\t351231000000Z\t\t%02X\tunknown\t/CN=node%04d\n", $_, $_) } 1 .. 40));
	put("etc/xcat/ca/serial", "29\n");
	put("etc/xcat/ca/openssl.cnf", "[ ca ]\ndefault_ca = xcatca\n" . text(4000));
	put(sprintf("etc/xcat/ca/certs/%02X.pem", $_), pem("CERTIFICATE", irand(900, 1400))) for 1 .. 40;
	put("etc/xcat/cert/server-cert.pem", pem("CERTIFICATE", 1300));
	put("etc/xcat/cert/server-key.pem", pem("PRIVATE KEY", 1700), 0600);
	put("etc/xcat/cert/server-cred.pem", pem("CERTIFICATE", 1300) . pem("PRIVATE KEY", 1700), 0600);
	put("etc/xcat/cert/ca.pem", pem("CERTIFICATE", 1300));
	symlink("server-cert.pem", "etc/xcat/cert/current.pem") or die "symlink: $!\n";
	for my $t (qw(rsa ecdsa ed25519)) {
		my $n = $t eq "rsa" ? 1800 : $t eq "ecdsa" ? 220 : 120;
		put("etc/xcat/hostkeys/ssh_host_${t}_key", pem("OPENSSH PRIVATE KEY", $n), 0600);
		my $pub = encode_base64(join("", map { chr(int(rand(256))) } 1 .. int($n / 4)), "");
		put("etc/xcat/hostkeys/ssh_host_${t}_key.pub", "ssh-$t $pub root\@mn1\n");
	}
	put("root/.xcat/client-cert.pem", pem("CERTIFICATE", 1300));
	put("root/.xcat/client-key.pem", pem("PRIVATE KEY", 1700), 0600);
	put("root/.xcat/client-cred.pem", pem("CERTIFICATE", 1300) . pem("PRIVATE KEY", 1700), 0600);
	put("root/.xcat/ca.pem", pem("CERTIFICATE", 1300));
} elsif ($mode eq "hosts") {
	chdir($dir) or die "$dir: $!\n";
	mkd("etc");
	my $h = "127.0.0.1 localhost localhost.localdomain\n::1 localhost6\n" .
	    "10.0.0.1 mn1 mn1.cluster.example.com\n10.0.0.2 mn2 mn2.cluster.example.com\n";
	for my $i (1 .. 4996) {
		$h .= sprintf("10.%d.%d.%d node%05d node%05d.cluster.example.com\n",
		    1 + int($i / 62500), int($i / 250) % 250, 1 + $i % 250, $i, $i);
	}
	put("etc/hosts", $h);
	put("etc/resolv.conf", "search cluster.example.com\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n");
} elsif ($mode eq "small") {
	my ($ntmpl, $nscripts) = @arg;
	reseed("small");
	mkpool(4096);
	chdir($dir) or die "$dir: $!\n";
	my @os = qw(rhels8.10 rhels9.4 sles15.5 ubuntu22.04);
	for my $i (0 .. $ntmpl - 1) {
		my $os = $os[$i % @os];
		mkd("install/custom/install/$os");
		put(sprintf("install/custom/install/%s/compute.%04d.tmpl", $os, $i),
		    "# xCAT template $i for $os\n" . text(irand(1024, 8192) - 30));
	}
	mkd("install/postscripts/custom");
	for my $i (0 .. $nscripts - 1) {
		my $d = $i % 4 == 0 ? "install/postscripts/custom" : "install/postscripts";
		put(sprintf("%s/script%04d", $d, $i),
		    "#!/bin/sh\n# postscript $i\n" . text(irand(1024, 8192) - 30), 0755);
	}
	symlink("script0001", "install/postscripts/hardeths") or die "symlink: $!\n";
	symlink("../otherpkgs/missing", "install/postscripts/otherpkgs.dangling") or die "symlink: $!\n";
} elsif ($mode eq "image") {
	my ($path, $size) = @arg;
	reseed("image");
	mkpool(4096);
	open(my $fh, ">", $path) or die "$path: $!\n";
	my $left = $size;
	while ($left > 0) {
		my $n = $left < 1048576 ? $left : 1048576;
		my $s = "";
		$s .= $pool[int(rand(@pool))] while length($s) < $n;
		print $fh substr($s, 0, $n) or die "$path: $!\n";
		$left -= $n;
	}
	close($fh) or die "$path: $!\n";
} elsif ($mode eq "rpmlist") {
	my ($n) = @arg;
	reseed("rpms");
	my @base = qw(kernel glibc openssl systemd bash coreutils xCAT perl python3
	    slurm munge lustre-client mlnx-ofa gpfs.base nvidia-driver cuda-libs
	    infiniband-diags rdma-core libibverbs ntp chrony rsyslog openssh);
	for my $i (0 .. $n - 1) {
		# log-uniform between 100 KiB and 5 MiB
		my $size = int(102400 * exp(rand() * log(5242880 / 102400)));
		printf("%s-%d.%d.%d-%d.el9.x86_64.rpm\t%d\n", $base[$i % @base],
		    irand(1, 9), irand(0, 40), irand(0, 200), $i, $size);
	}
} elsif ($mode eq "rpmsplit") {
	my ($list, $outdir) = @arg;
	open(my $l, "<", $list) or die "$list: $!\n";
	binmode(STDIN);
	while (my $line = <$l>) {
		chomp($line);
		my ($name, $size) = split /\t/, $line;
		my $buf = "";
		while (length($buf) < $size) {
			my $got = read(STDIN, $buf, $size - length($buf), length($buf));
			die "rpmsplit: short input\n" unless $got;
		}
		put("$outdir/$name", $buf);
	}
} elsif ($mode eq "many") {
	my ($top) = @arg;
	reseed("many");
	mkpool(2048);
	chdir($dir) or die "$dir: $!\n";
	for my $g (0 .. $top - 1) {
		for my $h (0 .. 99) {
			my $d = sprintf("group%03d/host%04d", $g, $g * 100 + $h);
			mkd($d);
			for my $f (0 .. 9) {
				put("$d/cfg$f.conf", text(irand(100, 4096)));
			}
		}
	}
} else {
	die "textgen: unknown mode $mode\n";
}
' "$@"
}

case "$scale" in
manyfiles | manyfiles-quick)
	textgen many "$dir" "$seed" "$top_dirs"
	;;
*)
	textgen creds "$dir" "$seed"
	textgen hosts "$dir" "$seed"
	textgen small "$dir" "$seed" "$tmpls" "$scripts"
	mkdir -p "$dir/install/iso" "$dir/install/netboot/rhels9.4/x86_64/compute" \
		"$dir/install/rhels9.4/x86_64/BaseOS/Packages"
	# The large files: written in parallel (openssl is CPU-bound, the
	# text generator too).
	rand_bytes "$big" big.iso >"$dir/install/iso/big.iso" &
	p1=$!
	rand_bytes "$iso" rhels-iso >"$dir/install/iso/rhels-9.4-x86_64-dvd1.iso" &
	p2=$!
	img_path=$dir/install/netboot/rhels9.4/x86_64/compute/rootimg.cpio
	textgen image "$dir" "$seed" "$img_path" "$img" &
	p3=$!
	rand_bytes "$iso" sles-iso >"$dir/install/iso/SLE-15-SP5-Full-x86_64.iso"
	list=$(mktemp "${TMPDIR:-/tmp}/gen-rpms.XXXXXX")
	textgen rpmlist "$dir" "$seed" "$rpms" >"$list"
	total=$(awk -F'\t' '{ s += $2 } END { printf "%d", s }' "$list")
	rand_bytes "$total" rpms |
		textgen rpmsplit "$dir" "$seed" "$list" \
			"$dir/install/rhels9.4/x86_64/BaseOS/Packages"
	rm -f "$list"
	wait "$p1"
	wait "$p2"
	wait "$p3"
	ln -s rootimg.cpio "$dir/install/netboot/rhels9.4/x86_64/compute/rootimg"
	;;
esac

nfiles=$(find "$dir" -type f | wc -l)
ndirs=$(find "$dir" -type d | wc -l)
kib=$(du -sk --apparent-size "$dir" | cut -f1)
echo "gen: $dir: $scale, seed $seed: $nfiles files, $ndirs dirs, $((kib / 1024)) MiB"
