//! Every key kickstarter files use, and what IMG does with it. The table was collected
//! from the 34 corpus files (`shared/corpus/yaml`), the MeeGo/Tizen KSWriter and its
//! template, and Mer's dialect; `img-client/tests/corpus_yaml.rs` checks that no corpus
//! key falls outside it. A key not listed here gets a warning naming it.
//!
//! | Key | Where | Effect |
//! |---|---|---|
//! | `Name` | image | image name, `# DisplayName:` |
//! | `Active` | any | image rendered by default when true (after merging) |
//! | `Platform` | image | MeeGo/Tizen: section merged between `Default` and the image |
//! | `Inherit` | image, section | Mer: sections merged first, in order, recursively |
//! | `FileName` | image | output name `<FileName>.ks` |
//! | `Baseline` | any | `@RELEASE@` in repository URLs |
//! | `Architecture` | any | `@ARCH@`, `# SuggestedArchitecture:` |
//! | `RepositoryArchitecture` | any | `@ARCH@` instead of `Architecture` (Mer) |
//! | `ImageType` | image | picks `Url-<ImageType>`, `# KickstartType:` |
//! | `Mic2Options` | any | `# -*-mic2-options-*- … -*-mic2-options-*-` magic line |
//! | `Schedule` | any | kept in the image list (kickstarter's index), no kickstart effect |
//! | `Language`, `Keyboard`, `Timezone` | any | `lang`, `keyboard`, `timezone --utc` |
//! | `RootPass` | any | `rootpw` |
//! | `DefaultUser`, `DefaultUserPass` | any | `user`, `desktop --autologinuser` |
//! | `PartSize`, `FileSystem` | any | `part / --size … --fstype=…` when no part file |
//! | `Part` | any | part file `custom/part/<Part>` replaces the `part` line |
//! | `Partition` | any | Maui: part file path relative to the YAML file |
//! | `Bootloader` | any | `False` drops the `bootloader` line |
//! | `BootloaderTimeout`, `BootloaderAppend`, `BootloaderOptions` | any | `bootloader` options |
//! | `StartX` | any | `xconfig --startxonboot` |
//! | `Desktop`, `Session` | any | `desktop --defaultdesktop/--session` (`None`: no default desktop) |
//! | `Kernel` | any | a package line in `%packages` |
//! | `PackageArgs` | any | `%packages --<PackageArgs>` |
//! | `SaveRepos` | any | MeeGo default repo options `--save --debuginfo --source --gpgkey=…` |
//! | `RepositoryOptions` | any | Mer default repo options (wins over `SaveRepos`) |
//! | `Repos`, `Groups`, `ExtraPackages`, `RemovePackages`, `PrePackages` | any | lists, concatenated and de-duplicated |
//! | `PostScripts`, `NoChrootScripts`, `PreScripts` | any | script files → `%post`, `%post --nochroot`, `%pre` |
//! | `Configurations`, `ExternalConfigs`, `Repositories`, `RepositoryURLVariables` | top level | image list, extra folders, repositories, URL tokens |
//! | `Url`, `Url-<type>`, `Options` | repository | base URL (per image type), repo options |

/// Keys merged as lists (concatenated over the layers, first occurrence kept).
pub const LIST_KEYS: &[&str] = &[
    "Repos",
    "Groups",
    "PostScripts",
    "NoChrootScripts",
    "PreScripts",
    "RemovePackages",
    "ExtraPackages",
    "PrePackages",
];

/// Keys of sections and images that IMG understands.
pub const ENTRY_KEYS: &[&str] = &[
    "Name",
    "Active",
    "Platform",
    "Inherit",
    "FileName",
    "Baseline",
    "Architecture",
    "RepositoryArchitecture",
    "ImageType",
    "Mic2Options",
    "Schedule",
    "Language",
    "Keyboard",
    "Timezone",
    "RootPass",
    "DefaultUser",
    "DefaultUserPass",
    "PartSize",
    "FileSystem",
    "Part",
    "Partition",
    "Bootloader",
    "BootloaderTimeout",
    "BootloaderAppend",
    "BootloaderOptions",
    "StartX",
    "Desktop",
    "Session",
    "Kernel",
    "PackageArgs",
    "SaveRepos",
    "RepositoryOptions",
    "Repos",
    "Groups",
    "ExtraPackages",
    "RemovePackages",
    "PrePackages",
    "PostScripts",
    "NoChrootScripts",
    "PreScripts",
];

/// Keys only meaningful at the top of a file.
pub const TOP_KEYS: &[&str] = &["Configurations", "ExternalConfigs", "Repositories", "RepositoryURLVariables"];

pub fn is_entry_key(key: &str) -> bool {
    ENTRY_KEYS.contains(&key)
}

pub fn is_repo_key(key: &str) -> bool {
    matches!(key, "Name" | "Url" | "Options") || key.strip_prefix("Url-").is_some_and(|t| !t.is_empty())
}

/// A close known key for a typo (`Group` → `Groups`), compared case-insensitively.
pub fn suggest(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    ENTRY_KEYS.iter().copied().find(|known| {
        let kn = known.to_ascii_lowercase();
        kn == k || kn == format!("{k}s") || format!("{kn}s") == k
    })
}

/// The warning text for an unknown key in `place` (e.g. "section `X`").
pub fn unknown_key_message(key: &str, place: &str) -> String {
    match suggest(key) {
        Some(s) => format!("unknown key `{key}` in {place} is ignored (did you mean `{s}`?)"),
        None => format!("unknown key `{key}` in {place} is ignored"),
    }
}
