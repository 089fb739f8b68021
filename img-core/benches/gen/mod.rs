//! Deterministic benchmark inputs, shared by the benches and by
//! `examples/gen_bench_inputs.rs` (which writes them to `target/bench-inputs/` so
//! pykickstart can parse the very same bytes).
#![allow(dead_code)]

/// Lines in the generated kickstart.
pub const KS_LINES: usize = 5000;
/// Platforms in the generated kickstarter template.
pub const PLATFORMS: usize = 50;
/// The overlay applied when rendering (original IMG form syntax).
pub const OVERLAY: &str = "gcc,gdb,strace,@MeeGo Netbook Desktop,@Development Tools,-google-chrome,-flash-plugin";

/// Criterion settings for both benches: short enough that `tests/bench/run` stays near a minute.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3))
}

/// A small deterministic generator (xorshift64*), so inputs never change between runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const STEMS: &[&str] = &[
    "qt5",
    "kf5",
    "glib2",
    "gstreamer1.0",
    "python3",
    "perl",
    "systemd",
    "connman",
    "ofono",
    "pulseaudio",
    "mesa",
    "libdrm",
    "wayland",
    "lipstick",
    "nemo",
    "sailfish",
    "jolla",
    "mce",
    "dsme",
    "usb-moded",
    "bluez5",
    "telepathy",
    "contactsd",
    "maliit",
    "harbour",
    "tracker",
    "buteo",
    "ambienced",
    "ngfd",
    "timed",
];
const SUFFIXES: &[&str] =
    &["", "-devel", "-tools", "-plugins", "-qml-plugin", "-tests", "-l10n", "-doc", "-common", "-utils", "-config"];

fn package(rng: &mut Rng, i: usize) -> String {
    let stem = STEMS[rng.below(STEMS.len())];
    let suffix = SUFFIXES[rng.below(SUFFIXES.len())];
    format!("{stem}-component{i}{suffix}")
}

/// A realistic mic-dialect kickstart of exactly [`KS_LINES`] lines: header commands,
/// repos with mic options, part lines, a big `%packages` with groups, exclusions and
/// comments, `%attachment`, several `%post` scripts (one `--nochroot`), `%pre`, `%pack`.
pub fn kickstart() -> String {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut l: Vec<String> = Vec::with_capacity(KS_LINES);
    l.push("# -*-mic2-options-*- -f loop --pack-to=@NAME@.tar.gz -*-mic2-options-*-".into());
    l.push("# Generated benchmark kickstart (img-core/benches/gen). Deterministic.".into());
    for c in [
        "lang en_US.UTF-8",
        "keyboard us",
        "timezone --utc UTC",
        "rootpw --plaintext nemo",
        "user --name nemo --groups audio,video --password nemo",
        "bootloader --timeout=0 --append=\"quiet console=ttyS0\" --menus=\"\" --ptable=gpt",
        "desktop --autologinuser=nemo --defaultdesktop=lipstick --session=/usr/bin/startlipstick",
        "xconfig --startxonboot",
        "firewall --disabled",
        "selinux --disabled",
        "services --enabled=sshd,connman",
        "",
    ] {
        l.push(c.into());
    }
    l.push("# Repositories".into());
    for i in 0..24 {
        let opts = match i % 4 {
            0 => " --save --debuginfo --source",
            1 => " --gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-bench --ssl_verify=no",
            2 => " --priority=50 --cost=100",
            _ => "",
        };
        l.push(format!(
            "repo --name=bench-repo-{i} --baseurl=https://repo.example.org/releases/@RELEASE@/repo{i}/@ARCH@/{opts}"
        ));
    }
    l.push("".into());
    l.push("# Disk layout".into());
    l.push("part / --size=3000 --ondisk=sda --fstype=ext4 --label=root --align=1024".into());
    l.push("part /boot --size=256 --ondisk=sda --fstype=ext2 --label=boot".into());
    l.push("part /home --size=8000 --ondisk=sda --fstype=btrfs --label=home".into());
    l.push("part swap --size=512 --ondisk=sda --fstype=swap".into());
    l.push("part /var --size=2000 --ondisk=sda --fstype=ext4 --label=var".into());
    l.push("part /srv --size=1000 --ondisk=sdb --fstype=xfs --label=srv".into());
    l.push("".into());

    // Scripts: %pre (20 lines), 4 x %post (150 lines), %post --nochroot (60), %pack (40).
    let mut scripts: Vec<String> = Vec::new();
    let script = |out: &mut Vec<String>, header: &str, body: usize, tag: &str| {
        out.push(header.to_owned());
        for j in 0..body {
            out.push(match j % 6 {
                0 => format!("# {tag}: step {j}"),
                1 => format!("echo \"{tag} step {j}\" >> /var/log/bench-{tag}.log"),
                2 => format!("if [ -d /etc/{tag}{j} ]; then rm -rf /etc/{tag}{j}/cache; fi"),
                3 => format!("sed -i 's/^#Option{j}=.*/Option{j}=yes/' /etc/bench/{tag}.conf"),
                4 => format!("ln -sf /usr/lib/{tag}/lib{j}.so /usr/lib/lib{tag}{j}.so"),
                _ => format!("export BENCH_{j}=\"${{BENCH_{j}:-default}}\""),
            });
        }
        out.push("%end".into());
        out.push("".into());
    };
    script(&mut scripts, "%pre", 20, "pre");
    for k in 0..4 {
        script(&mut scripts, &format!("%post --erroronfail --log=/var/log/post{k}.log"), 150, &format!("post{k}"));
    }
    script(&mut scripts, "%post --nochroot", 60, "nochroot");
    script(&mut scripts, "%pack", 40, "pack");
    let attachment = ["%attachment", "/boot/vmlinuz", "/boot/initrd.img", "/boot/bench-bootloader.img", "%end", ""];

    // %packages fills the rest exactly.
    let fixed = l.len() + scripts.len() + attachment.len() + 2; // + header + %end
    let body = KS_LINES - fixed;
    l.push("%packages --ignoremissing".into());
    for i in 0..body {
        l.push(match i % 40 {
            0 => format!("# section {}", i / 40),
            7 => format!("@Bench Group {}", i / 40),
            13 => format!("-{}", package(&mut rng, i)),
            21 => format!("{}  # pinned", package(&mut rng, i)),
            _ => package(&mut rng, i),
        });
    }
    l.push("%end".into());
    l.extend(attachment.iter().map(|s| s.to_string()));
    l.extend(scripts);
    debug_assert_eq!(l.len(), KS_LINES);
    let mut text = l.join("\n");
    text.push('\n');
    text
}

/// A MeeGo-dialect kickstarter configuration: `Default`, [`PLATFORMS`] platform
/// sections, 60 `Configurations` entries; and its separate `repos.yaml`.
pub fn kickstarter() -> (String, String) {
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    let mut y = String::new();
    y.push_str(
        "Default:\n    Active: True\n    Language: en_US.UTF-8\n    Keyboard: us\n    SaveRepos: False\n    \
         Timezone: America/New_York\n    RootPass: meego\n    DefaultUser: meego\n    DefaultUserPass: meego\n    \
         PartSize: 3000\n    Groups:\n        - MeeGo Core\n        - MeeGo X Window System\n\n",
    );
    for p in 0..PLATFORMS {
        y.push_str(&format!(
            "PLATFORM{p}:\n    PartSize: {}\n    BootloaderAppend: \"quiet console=ttyS{}\"\n    BootloaderTimeout: 0\n    \
             Kernel: kernel-platform{p}\n    Groups:\n        - X for Platform {p}\n        - Printing\n    Repos:\n        \
             - core\n        - platform{p}\n    ExtraPackages:\n",
            2000 + 100 * (p % 10),
            p % 4
        ));
        for i in 0..8 {
            y.push_str(&format!("        - {}\n", package(&mut rng, p * 100 + i)));
        }
        y.push_str("        - -google-chrome\n\n");
    }
    y.push_str("Configurations:\n");
    for c in 0..60 {
        let p = c % PLATFORMS;
        y.push_str(&format!(
            "    -   Name: Bench Image {c}\n        Active: True\n        Baseline: 1.{}\n        Platform: PLATFORM{p}\n        \
             FileName: bench-image-{c}\n        Groups:\n            - Bench Desktop {c}\n        Repos:\n            - core\n            \
             - extra\n        ExtraPackages:\n            - {}\n            - {}\n",
            c % 3,
            package(&mut rng, 9000 + c),
            package(&mut rng, 9100 + c)
        ));
    }
    let mut r = String::from("Repositories:\n");
    for name in ["core", "extra"].iter().map(|s| s.to_string()).chain((0..PLATFORMS).map(|p| format!("platform{p}"))) {
        r.push_str(&format!(
            "    -   Name: {name}\n        Url: http://repo.example.org/MeeGo/releases/1.2/{name}/ia32/packages/\n"
        ));
    }
    (y, r)
}
