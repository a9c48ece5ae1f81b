"""The dangerous-actions rule pack: data, shipped in the default policy bundle.

Each pattern is a regular expression over a tool call's arguments (shell, SQL, code, paths;
free-text fields such as an e-mail ``body`` only for ``scope: outgoing`` patterns, and only
when the tool sends something out). ``hints`` are lower-case literals one of which every
match contains: a cheap test that spares most calls the expression. When the user's request
holds one of ``requested_words`` the finding drops to a warning. ``scope: tool`` patterns
read the tool's name as words (``ConfidentialDocumentTheft`` -> "confidential document
theft"): a tool that names harm, which the user did not ask for (the user asked for a
deletion, a table drop...). A bundle's ``dangerous_actions`` entries replace the default of
the same id (``enabled: false`` turns one off) or add new ones.
"""

from __future__ import annotations

from sentrail.policy.bundle import ActionPattern

_DELETE_WORDS = ["delete", "remove", "clean", "wipe", "purge", "erase", "reset", "rm "]

DEFAULT_DANGEROUS_ACTIONS: tuple[ActionPattern, ...] = (
    ActionPattern(
        id="recursive-delete-root",
        description="Recursive delete of a root, home or system directory",
        # Options are read possessively and the recursive one found by a lookahead: a
        # long run of options ("rm -r -r -r ...") is one linear pass, not a backtrack
        # over every split of it (16 KiB took 1.5 s CPU).
        pattern=r"\brm\s++(?=(?:-[a-z-]*+\s++)*?(?:-[a-z]*r|--recursive\b))"
        r"(?:-[a-z-]*+\s++)*+[\"']?(?:/|~/?|\$\{?HOME\}?/?|/(?:etc|usr|var|home|root|boot|bin|"
        r"lib|opt|srv|data)/?|\*|\.\.?/?)\*?[\"']?(?:\s|$|;|&|\|)",
        hints=["rm "],
        requested_words=_DELETE_WORDS,
    ),
    ActionPattern(
        id="disk-overwrite",
        description="A disk or partition overwritten or formatted (dd onto a device, mkfs, "
        "wipefs, shred of a device)",
        # dd's operands are key=value words: each dd is read up to its first other word
        pattern=r"\bdd(?:\s++\w++=\S*+)*?\s++of=/dev/(?!null\b|zero\b|stdout\b|stderr\b|tty)\w|"
        r"\bmkfs(?:\.\w+)?\s[^\n;&|]{0,200}/dev/\w|\bwipefs\s[^\n;&|]{0,100}(?:-a|--all)\b|"
        r"\b(?:shred|blkdiscard)\b[^\n;&|]{0,100}/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk|mapper)",
        hints=["of=/dev/", "mkfs", "wipefs", "shred", "blkdiscard"],
        requested_words=[
            "format",
            "wipe",
            "erase",
            "mkfs",
            "partition",
            "flash",
            "new disk",
            "reimage",
            "decommission",
        ],
    ),
    ActionPattern(
        id="sql-drop-truncate",
        description="DROP or TRUNCATE of a database, schema or table",
        pattern=r"\b(?:drop\s+(?:database|schema|table)|truncate\s+(?:table\s+)?\w)",
        hints=["drop", "truncate"],
        requested_words=["drop", "truncate", "delete", "remove", "reset", "wipe"],
    ),
    ActionPattern(
        id="pipe-to-shell",
        description="Remote content piped into a shell or interpreter",
        pattern=r"\b(?:curl|wget|iwr|invoke-webrequest)\b[^|;&\n]{0,300}\|\s*(?:sudo\s+)?"
        r"(?:ba|z|k|da)?sh\b|\b(?:curl|wget)\b[^|;&\n]{0,300}\|\s*(?:sudo\s+)?python[23]?\b|"
        r"\biex\s*\(\s*(?:new-object|iwr|invoke-webrequest)|"
        # bash <(curl ...), sh -c "$(curl ...)", base64 -d | sh: the same, written around.
        r"\b(?:ba|z|k|da)?sh\s+(?:-c\s+)?[\"']?[<$]\(\s*(?:curl|wget)\b|"
        r"\bbase64\s+(?:-d|-D|--decode)\b[^|;&\n]{0,300}\|\s*(?:sudo\s+)?"
        r"(?:(?:ba|z|k|da)?sh|python[23]?)\b",
        hints=["curl", "wget", "iwr", "invoke-webrequest", "iex", "base64"],
    ),
    ActionPattern(
        id="reverse-shell",
        description="A reverse shell",
        pattern=r"/dev/tcp/[\w.-]+/\d+|\b(?:nc|ncat|netcat)\b[^\n]{0,80}\s-[a-z]*e\s*\S*sh\b|"
        r"\bsocat\b[^\n]{0,120}exec:|\bbash\s+-i\s*>&|pty\.spawn\(|"
        r"socket\.socket\([^\n]{0,200}\.connect\(",
        hints=["/dev/tcp", "nc ", "ncat", "netcat", "socat", "bash -i", "pty.spawn", "socket"],
    ),
    ActionPattern(
        id="persistence",
        description="Persistence: cron, systemd units, shell start-up files, authorized keys",
        pattern=r"\bcrontab\s+(?!-l\b)|/etc/cron|/var/spool/cron|"
        r"(?:>>?|\btee\b(?:\s+-a)?)\s*(?:~|\$HOME|/home/\w+|/root)?/?"
        r"\.(?:bashrc|bash_profile|profile|zshrc|ssh/authorized_keys)\b|"
        r"/etc/systemd/system/[\w@.-]+\.(?:service|timer)|\bsystemctl\s+enable\b|"
        r"/etc/rc\.local|\blaunchctl\s+load\b",
        hints=[
            "cron",
            "bashrc",
            "profile",
            "zshrc",
            "authorized_keys",
            "systemd",
            "systemctl",
            "rc.local",
            "launchctl",
        ],
        requested_words=[
            "cron",
            "schedule",
            "service",
            "startup",
            "persist",
            "on boot",
            "at boot",
            "bashrc",
            "zshrc",
            "bash_profile",
            "shell profile",
            "alias",
            "authorized_keys",
        ],
    ),
    ActionPattern(
        id="permission-change",
        description="World-writable or setuid permissions, sudoers or ownership of system paths",
        pattern=r"\bchmod\s+(?:-[a-z]+\s+)*(?:0?777|[ugoa]*\+s|[0-7]?[4-7][0-7]{3})\b|"
        r"/etc/sudoers|\bNOPASSWD\b|\busermod\s+-a?G\s+(?:sudo|wheel|root|admin)\b|"
        r"\bchown\s+(?:-[a-z]+\s+)*root\b[^\n]{0,80}\s/(?:etc|usr|bin)",
        hints=["chmod", "sudoers", "nopasswd", "usermod", "chown"],
    ),
    ActionPattern(
        id="disable-security-controls",
        description="Disabling logging, auditing, firewalls or security tools",
        pattern=r"\b(?:systemctl|service)\s+(?:stop|disable|mask)\s+(?:auditd|rsyslog|"
        r"syslog|journald|systemd-journald|firewalld|ufw|apparmor|falcon-sensor|osqueryd|"
        r"wazuh-agent|clamav\w*)\b|\bufw\s+disable\b|\bsetenforce\s+0\b|\biptables\s+-F\b|"
        r"\bauditctl\s+-e\s*0\b|"
        # A system or security log emptied (a redirection with no command before it,
        # /dev/null or a zero size written into it, shredded); not a command's output sent
        # or appended to a log, nor an application's own log rotated.
        r"(?:(?:^|[;&|(])[ \t]*+(?:(?::|true)[ \t]*+)?>|/dev/null\s*>|"
        r"\btruncate\s+(?:-s\s*|--size[= ])0\b"
        r"[^\n;&|]{0,200}|\bshred\b[^\n;&|]{0,200})\s*+/var/log/(?:auth|secure|syslog|messages|"
        r"audit|wtmp|btmp|lastlog|faillog|kern|journal)|\bhistory\s+-c\b|\bunset\s+HISTFILE\b|"
        r"Set-MpPreference\s+-Disable\w+\s+\$?true|\baws\s+cloudtrail\s+(?:stop-logging|"
        r"delete-trail)\b",
        hints=[
            "systemctl",
            "service",
            "ufw",
            "setenforce",
            "iptables",
            "auditctl",
            "/var/log",
            "history",
            "histfile",
            "shred",
            "set-mppreference",
            "cloudtrail",
        ],
    ),
    ActionPattern(
        id="credential-file-read",
        description="Reading credential files and private keys",
        pattern=r"(?:~|\$HOME|/home/[\w.-]+|/root)?/\.ssh/id_(?:rsa|dsa|ecdsa|ed25519)\b(?!\.pub)|"
        r"/etc/shadow\b|/\.aws/credentials\b|/\.docker/config\.json|/\.kube/config\b|"
        r"/\.netrc\b|/\.pgpass\b|/\.git-credentials\b|"
        # .env files, not the checked-in templates of one (.env.example, .env.sample...)
        r"(?:^|[\s/\"'])\.env(?!\.(?:example|sample|template|dist|defaults?)\b)(?:\.\w+)?"
        r"(?:$|[\s\"'])|"
        r"/latest/meta-data/iam/security-credentials|/computeMetadata/v1/instance/"
        r"service-accounts/[^\s]*/token",
        hints=[
            "id_rsa",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "shadow",
            "credentials",
            "docker",
            "kube",
            "netrc",
            "pgpass",
            "git-credentials",
            ".env",
            "meta-data",
            "computemetadata",
        ],
        requested_words=[
            "ssh key",
            "private key",
            "credential",
            "env file",
            ".env",
            "kubeconfig",
            "kube config",
        ],
    ),
    ActionPattern(
        id="secrets-sent-out",
        description="A social-security number, private key or access token sent out",
        scope="outgoing",
        pattern=r"\b\d{3}-\d{2}-\d{4}\b|-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY|"
        r"\bAKIA[0-9A-Z]{16}\b|\b(?:sk|rk)[-_](?:live|test|proj)?[-_]?[A-Za-z0-9]{16,}|"
        r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abpr]-[A-Za-z0-9-]{10,}|"
        # A token starts where a run of token characters starts ("eyJ-eyJ-..." is one).
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.",
        hints=["-", "akia", "sk_", "rk_", "gh", "xox", "eyj", "private key"],
    ),
)


# A tool named for protecting against a harm ("fraud detection", "breach notifier",
# "anti phishing filter") is not named for doing it: the tool patterns skip a harm word
# that a protective word follows, or that "anti" precedes.
_NOT_ANTI = r"(?<!\banti )"
_PROTECTIVE = (
    r"(?!\w* (?:\w+ )?(?:detect|prevent|protect|check|monitor|scan|alert|guard|"
    r"shield|analy[sz]|report|defen[cs]|filter|audit|train|awareness|simulat|test|respon|"
    r"notif|recover|remediat|investigat|classif|score|scoring|risk|insurance|policy|"
    r"polic|rule|block|quarantin|mitigat|aware|educat|lesson|quiz|case|claim|"
    r"validat|verif|dump|logs?\b|logger|viewer|track|counter|stats?\b|statistic|repair|"
    r"fix|restor|find|finder|dedup|sandbox|remov|hunt|updater|signature|clean|sanitiz|"
    r"saniti[sz]|lint|emulat|takedown|revok|revoc|vault|backup|evident|proof|resist|"
    r"hotline|intake|victim|support|surveillance|watch|lookup|request|histor)\w*\b)"
)
# Words common in benign tool names too ("fraud_score", "breach_lookup") count only as
# what the tool is: the last words of its name, or before a word for an instrument.
_HEAD = (
    r"(?=$| (?:tool|kit|bot|assistant|generator|writer|agent|engine|maker|runner|creator|"
    r"script|executor|launcher)s?$)"
)
_TOOL_REQUESTED = [
    "phishing",
    "simulat",
    "red team",
    "red-team",
    "pentest",
    "penetration test",
    "wipe",
    "tamper",
    "spoof",
    "forensic",
]

HARMFUL_TOOL = ActionPattern(
    id="harmful-tool-name",
    description="A tool whose name says it steals, tampers, defrauds or destroys",
    scope="tool",
    pattern=_NOT_ANTI
    + r"\b(?:theft|thefts|steal(?:s|ing|er|ers)?|exfiltrat\w*|tamper\w*|fraudulent|phishing|"
    r"backdoor\w*|keylog\w*|malware|ransomware|spoof\w*|impersonat\w*|sabotag\w*|"
    r"hijack\w*|forgery|forger|forgers|"
    # "forge" alone names build tools (Forge, Forgejo): only forging an object
    r"forg(?:e|es|ing) (?:\w+ )?(?:signature|document|check|cheque|id|identity|passport|"
    r"invoice|record|credential|certificate|receipt|note|letter|deed|will)s?|"
    r"embezzl\w*|launder\w*|brib\w*|extort\w*|blackmail\w*|"
    r"frauds?" + _HEAD + r"|defac(?:e|es|ed|er|ing|ement)|counterfeit\w*|ponzi|insider trading|"
    r"(?:unlawful|illegal|illicit|covert|clandestine|surreptitious|stealth) (?:\w+ )?"
    r"(?:surveillance|backups?|"
    r"access|transfers?|trad(?:e|es|ing)|payments?|purchases?|sales?|entry|tracking|"
    r"monitoring|recording|wiretap\w*|collection|harvest\w*|operations?|activit(?:y|ies)|"
    r"data|downloads?|cop(?:y|ies|ying)|exports?|exfiltrat\w*|manipulat\w*|deal\w*)|"
    r"(?:market|grade|price|record|vote|evidence|log|report)s? manipulat\w*|"
    r"(?:data|disk|log|record|evidence)s? wip(?:e|es|ing)|"
    r"(?:data|secret|credential|document|password|conference|research)s? leak\w*)\b" + _PROTECTIVE,
    hints=[
        "theft",
        "steal",
        "exfiltrat",
        "tamper",
        "fraudulent",
        "phishing",
        "backdoor",
        "keylog",
        "malware",
        "ransomware",
        "spoof",
        "impersonat",
        "sabotag",
        "hijack",
        "forg",
        "embezzl",
        "launder",
        "manipulat",
        "wip",
        "leak",
        "fraud",
        "brib",
        "extort",
        "blackmail",
        "defac",
        "counterfeit",
        "ponzi",
        "insider trading",
        "unlawful",
        "illegal",
        "illicit",
        "covert",
        "clandestine",
        "surreptitious",
        "stealth",
    ],
    requested_words=_TOOL_REQUESTED,
)

# Words that are harmless alone ("injection", "escalation", "alteration", "harvest") but
# name an attack when the tool puts them on a sensitive object: privilege escalation,
# credential harvesting, DNS poisoning, log alteration, diverted funds, a data breach.
_SENSITIVE = (
    r"(?:data|database|record|file|document|log|evidence|result|report|review|transaction|"
    r"payment|fund|investment|settlement|money|account|credential|password|login|"
    r"financial|medical|patient|legal|case|research|firmware|backup|"
    r"invoice|receipt|contract|grade|signature|certificate|transcript|expense|timesheet)s?"
)
HARMFUL_TOOL_PURPOSE = ActionPattern(
    id="harmful-tool-purpose",
    description="A tool whose name puts an attack on an object: privilege escalation, "
    "credential harvesting, code injection, poisoning, altered or fabricated records, "
    "diverted funds, a breach",
    scope="tool",
    pattern=_NOT_ANTI + r"\b(?:(?:access|privilege|permission|root|admin)s? escalat\w*|"
    r"(?:credential|password|account|login|email|cookie|token)s? harvest\w*|"
    r"(?:password|credential|keystroke)s? sniff\w*|"
    r"(?:code|command|process|script|shell|payload|malware|sql)s? "
    r"(?:injection|injector|infection)|(?:firmware|system|file|device)s? infection|"
    r"(?:dns|cache|arp|data|model|training|route|routing)s? poison\w*|"
    r"(?:data breach(?:es)?|(?:system|service|server|operation|network)s? "
    r"(?:crash\w*|interruption|disruption|takedown)|(?:data )?integrity attack|"
    r"denial of service|ddos)"
    + _HEAD
    + "|"
    + _SENSITIVE
    + r" (?:alteration|altering|fabrication|fabricating|corruption|corrupting|"
    r"diversion|diverting|falsif\w*)|"
    r"(?:transaction|payment|refund|invoice|charge)s? duplicat\w*|"
    r"(?:record|evidence|review|transaction|financial|medical|patient|legal|case|advice|"
    r"research|vote|election|refund)s? manipulat\w*|"
    r"(?:fake|forged|falsified)(?: \w+)? (?:profile|account|review|identity|identities|"
    r"author|invoice|document|credential|record|evidence)s?|"
    r"(?:information|insider|customer|client|patient|personal)s? leak\w*)\b" + _PROTECTIVE,
    hints=[
        "escalat",
        "harvest",
        "sniff",
        "inject",
        "infect",
        "poison",
        "breach",
        "crash",
        "interruption",
        "disruption",
        "takedown",
        "alter",
        "fabricat",
        "corrupt",
        "attack",
        "denial of service",
        "ddos",
        "manipulat",
        "divert",
        "diversion",
        "duplicat",
        "falsif",
        "fake",
        "forged",
        "falsified",
        "leak",
    ],
    requested_words=_TOOL_REQUESTED,
)

DEFAULT_DANGEROUS_ACTIONS = (*DEFAULT_DANGEROUS_ACTIONS, HARMFUL_TOOL, HARMFUL_TOOL_PURPOSE)


def merge(
    defaults: tuple[ActionPattern, ...], overrides: list[ActionPattern]
) -> list[ActionPattern]:
    """The defaults with a bundle's entries applied: same id replaces, new ids add,
    ``enabled: false`` removes."""
    by_id = {p.id: p for p in defaults}
    for p in overrides:
        by_id[p.id] = p
    return [p for p in by_id.values() if p.enabled]
