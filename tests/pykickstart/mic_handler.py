"""pykickstart with mic's kickstart extensions, registered our own way.

mic (MeeGo Image Creator; intel/mic, sailfishos/mic) patched pykickstart's
command map at start-up. This module does the equivalent on top of the current
pykickstart DEVEL handler instead of mic's old FC4/F8 base classes, so modern
options keep working and mic's extras are added:

  repo        --save --debuginfo --source --gpgkey --ssl_verify --priority
              --disable --nocache --proxyuser --proxypasswd   (--cost, --proxy
              are stock)
  part        --align --extoptions --part-type --uuid --active
  bootloader  --menus --ptable
  btrfs       --quota --snapshot --base   (sailfishos/mic's btrfs)
  desktop     --defaultdesktop --defaultdm --autologinuser --session (new)
  installerfw, installerfw_plugins  FEATURES,...   (new)
  sections    %attachment, %prepackages (package-list style), %pack (script)

`make_parser()` returns a KickstartParser that never aborts on a per-line error:
errors, missing %include files and warnings are recorded on the parser
(`parser.ks_errors`, `parser.ks_warnings`) instead of printed.
"""

import os
import warnings

from pykickstart import sections as kssections
from pykickstart.base import KickstartCommand
from pykickstart.errors import KickstartError, KickstartParseError
from pykickstart.handlers.control import commandMap, dataMap
from pykickstart.options import KSOptionParser
from pykickstart.parser import KickstartParser, Packages, Script
from pykickstart.version import DEVEL, F8, returnClassForVersion

KS_SCRIPT_PACK = 100  # mic's script type for %pack

_cmds = commandMap[DEVEL]
_data = dataMap[DEVEL]
_Repo, _RepoData = _cmds["repo"], _data["RepoData"]
_Part, _PartData = _cmds["part"], _data["PartData"]
_Boot = _cmds["bootloader"]
_Btrfs, _BtrfsData = _cmds["btrfs"], _data["BTRFSData"]


def _add(op, *names, **kw):
    """add_argument unless the stock parser already has one of the names."""
    have = {s for a in op._actions for s in a.option_strings}
    if not any(n in have for n in names):
        kw.setdefault("version", F8)
        kw.setdefault("help", "")
        op.add_argument(*names, **kw)


class MicRepoData(_RepoData):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.save = kwargs.get("save", False)
        self.debuginfo = kwargs.get("debuginfo", False)
        self.source = kwargs.get("source", False)
        self.gpgkey = kwargs.get("gpgkey", None)
        self.disable = kwargs.get("disable", False)
        self.ssl_verify = kwargs.get("ssl_verify", "yes")
        self.priority = kwargs.get("priority", None)
        self.nocache = kwargs.get("nocache", False)
        self.proxy_username = kwargs.get("proxy_username", None)
        self.proxy_password = kwargs.get("proxy_password", None)


# Class names are "Prefix_Command": pykickstart names the handler attribute
# after the part behind the first underscore (handler.repo, handler.partition...).
class Mic_Repo(_Repo):
    def _getParser(self):
        op = super()._getParser()
        for flag in ("--save", "--debuginfo", "--source", "--disable", "--nocache"):
            _add(op, flag, dest=flag[2:], action="store_true", default=False)
        _add(op, "--gpgkey", dest="gpgkey", default=None)
        _add(op, "--ssl_verify", dest="ssl_verify", default="yes")
        _add(op, "--priority", dest="priority", type=int, default=None)
        _add(op, "--proxyuser", dest="proxy_username", default=None)
        _add(op, "--proxypasswd", dest="proxy_password", default=None)
        return op


class MicPartData(_PartData):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.align = kwargs.get("align", None)
        self.extopts = kwargs.get("extopts", None)
        self.part_type = kwargs.get("part_type", None)
        self.uuid = kwargs.get("uuid", None)
        self.active = kwargs.get("active", False)


class Mic_Partition(_Part):
    def _getParser(self):
        op = super()._getParser()
        _add(op, "--align", dest="align", type=int, default=None)
        _add(op, "--extoptions", dest="extopts", default=None)
        _add(op, "--part-type", dest="part_type", default=None)
        _add(op, "--uuid", dest="uuid", default=None)
        # Older MeeGo kickstarts (N900/N950 handsets) mark the boot partition
        # with `--active`; mic of that time accepted it.
        _add(op, "--active", dest="active", action="store_true", default=False)
        return op


class Mic_Bootloader(_Boot):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.menus = kwargs.get("menus", "")
        self.ptable = kwargs.get("ptable", "msdos")

    def _getParser(self):
        op = super()._getParser()
        _add(op, "--menus", dest="menus", default="")
        _add(op, "--ptable", dest="ptable", default="msdos")
        return op


class MicBtrfsData(_BtrfsData):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.quota = kwargs.get("quota", False)
        self.snapshot = kwargs.get("snapshot", False)
        self.base = kwargs.get("base", "")


class Mic_BTRFS(_Btrfs):
    def _getParser(self):
        op = super()._getParser()
        _add(op, "--quota", dest="quota", action="store_true", default=False)
        _add(op, "--snapshot", dest="snapshot", action="store_true", default=False)
        _add(op, "--base", dest="base", default="")
        return op

    def parse(self, args):
        # The stock command insists on devices for every non-subvolume; mic's
        # snapshots name a --base instead. Parse mic's options ourselves.
        ns, extra = self.op.parse_known_args(args=args, lineno=self.lineno)
        if getattr(ns, "snapshot", False):
            data = self.dataClass()
            self.set_to_obj(ns, data)
            data.lineno = self.lineno
            if not data.name or not data.base:
                raise KickstartParseError("btrfs snapshot requires --name and --base", lineno=self.lineno)
            if extra:
                data.mountpoint = extra[0]
                data.devices = extra[1:]
            return data
        return super().parse(args)


class Mic_Desktop(KickstartCommand):
    """mic's `desktop` command: default desktop, display manager, autologin."""

    def __init__(self, writePriority=0, *args, **kwargs):
        super().__init__(writePriority, *args, **kwargs)
        self.op = self._getParser()
        self.defaultdesktop = None
        self.defaultdm = None
        self.autologinuser = "meego"  # mic's default
        self.session = None

    def _getParser(self):
        op = KSOptionParser(prog="desktop", version=F8, description="mic: desktop settings")
        for name in ("defaultdesktop", "defaultdm", "autologinuser", "session"):
            op.add_argument("--" + name, dest=name, version=F8, help="")
        return op

    def parse(self, args):
        ns, extra = self.op.parse_known_args(args=args, lineno=self.lineno)
        if extra:
            raise KickstartParseError("Unexpected arguments to desktop command: %s" % extra, lineno=self.lineno)
        self.set_to_self(ns)
        return self

    def __str__(self):
        return ""


class Mic_InstallerFw(KickstartCommand):
    """mic's `installerfw_plugins FEATURE,...` (and the obsolete `installerfw`)."""

    def __init__(self, writePriority=0, *args, **kwargs):
        super().__init__(writePriority, *args, **kwargs)
        self.op = KSOptionParser(prog="installerfw_plugins", version=F8, description="mic")
        self.features = []

    def parse(self, args):
        _ns, extra = self.op.parse_known_args(args=args, lineno=self.lineno)
        if len(extra) != 1:
            raise KickstartParseError("%s requires one argument" % self.currentCmd, lineno=self.lineno)
        self.features = ["bootloader" if f == "extlinux" else f for f in extra[0].split(",")]
        return self

    def __str__(self):
        return ""


class _ListSection(kssections.Section):
    """%attachment / %prepackages: one item per line, `#` starts a comment."""

    attr = ""

    def handleLine(self, line):
        if not self.handler:
            return
        line = line.partition("#")[0].strip()
        if line:
            getattr(self.handler, self.attr).add([line])

    def handleHeader(self, lineno, args):
        kssections.Section.handleHeader(self, lineno, args)


class AttachmentSection(_ListSection):
    sectionOpen = "%attachment"
    attr = "attachment"


class PrepackagesSection(_ListSection):
    sectionOpen = "%prepackages"
    attr = "prepackages"


class PackScriptSection(kssections.ScriptSection):
    sectionOpen = "%pack"

    def _resetScript(self):
        kssections.ScriptSection._resetScript(self)
        self._script["type"] = KS_SCRIPT_PACK


_Base = returnClassForVersion(DEVEL)
_MIC_COMMANDS = dict(_cmds)
_MIC_COMMANDS.update({
    "repo": Mic_Repo,
    "part": Mic_Partition,
    "partition": Mic_Partition,
    "bootloader": Mic_Bootloader,
    "btrfs": Mic_BTRFS,
    "desktop": Mic_Desktop,
    "installerfw": Mic_InstallerFw,
    "installerfw_plugins": Mic_InstallerFw,
})
_MIC_DATA = dict(_data)
_MIC_DATA.update({"RepoData": MicRepoData, "PartData": MicPartData, "BTRFSData": MicBtrfsData})


class MicHandler(_Base):
    def __init__(self, *args, **kwargs):
        kwargs["mapping"] = _MIC_COMMANDS
        kwargs["dataMapping"] = _MIC_DATA
        super().__init__(*args, **kwargs)
        self.attachment = Packages()
        self.prepackages = Packages()


class MicParser(KickstartParser):
    """Non-fatal parser: per-line errors and missing includes are recorded."""

    def __init__(self, handler):
        super().__init__(handler, errorsAreFatal=False, missingIncludeIsFatal=False,
                         unknownSectionIsFatal=False)
        self.ks_errors = []
        self.registerSection(PackScriptSection(self.handler, dataObj=Script))
        self.registerSection(AttachmentSection(self.handler))
        self.registerSection(PrepackagesSection(self.handler))

    def _tryFunc(self, fn):
        try:
            fn()
        except Exception as e:  # pykickstart raises many kinds; record each
            self.errorsCount += 1
            self.ks_errors.append(str(e).strip())

    def _handleInclude(self, f):
        self._includeDepth += 1
        try:
            base = self.currentdir.get(self._includeDepth - 1)
            path = f if os.path.isabs(f) or base is None else os.path.join(base, f)
            if not os.path.exists(path):
                self.ks_errors.append("%%include %s: file not found (%s)" % (f, os.path.normpath(path)))
            else:
                self.readKickstart(path, reset=False)
        except KickstartError as e:
            self.ks_errors.append("%%include %s: %s" % (f, e))
        finally:
            self._includeDepth -= 1


def make_parser():
    return MicParser(MicHandler())


def parse_file(path):
    """Parses `path`; returns (parser, fatal_error_or_None, warnings)."""
    parser = make_parser()
    fatal = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser.readKickstart(path)
        except Exception as e:  # a fatal error: keep what was parsed so far
            fatal = str(e).strip() or type(e).__name__
    return parser, fatal, [str(w.message) for w in caught]
