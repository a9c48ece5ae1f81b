"""The anchor expressions of instruction scoring: each a way of starting an instruction
addressed to the agent (an override phrase, a role marker, words to the agent, an
imperative verb at the start of a clause, a chained transfer), with its points.

:mod:`sentrail.detect.content_prefilter` decides which of them can match in a text and
where; :mod:`sentrail.detect.content_instructions` scores the windows they open.
"""

from __future__ import annotations

import re

# Imperative verbs that make an agent do something with effect ...
STRONG_VERBS = (
    "send|transfer|wire|pay|withdraw|deposit|delete|remove|erase|wipe|destroy|drop|purge|"
    "grant|revoke|share|forward|e-?mail|post|publish|upload|update|change|modify|reset|"
    "disable|enable|unlock|move|copy|rename|leave|invite|schedule|cancel|sell|buy|"
    "redirect|dispatch|give|approve|execute|install|uninstall|deploy|push|merge|fill|"
    "submit|sign|export|reveal|disclose|authori[sz]e|allow|whitelist|blacklist|unblock|"
    "encode|encrypt|decrypt|tweet|escalate|assign|terminate|kill|exfiltrate|leak|dump|"
    "initiate|transmit|distribute|issue|activate|deactivate"
)
# ... and verbs that gather or look (instructions when combined with more features).
WEAK_VERBS = (
    "retrieve|get|fetch|list|find|search|collect|gather|extract|read|access|view|check|"
    "provide|generate|download|save|store|write|print|output|include|insert|append|"
    "replace|use|call|invoke|visit|navigate|click|reply|respond|tell|notify|contact|"
    "create|add|book|order|place|set|lock|open|run|turn|switch|start|stop|restart|"
    "join|subscribe|register|block|compress|archive|sync|message|go|make"
)
_CLAUSE = (
    r"(?:^|[.!?;:]\s+|\n\s*(?:[-*\u2022]|\d{1,2}[.)]|\[[ xX]?\])?\s*|[\"'(\[]\s*|"
    r",\s+(?=(?-i:[A-Z])))"
)
_POLITE = (
    r"(?:please|kindly|pls|(?:can|could|would|will) you(?: please)?|"
    r"(?:i|we) (?:need|want|would like|require) you to|you (?:must|should|need to|have to|"
    r"are (?:required|instructed) to)(?: now)?|make sure (?:to|you)|be sure to|"
    r"(?:first|then|now|also|next|finally),?)"
)

_F = re.I | re.M
# (pattern, points) — each a way of starting an instruction to the agent.
ANCHORS: tuple[tuple[re.Pattern[str], int], ...] = (
    (
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|"
            r"your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|original|other|"
            r"system|safety|existing)?\s*(?:instructions?|prompts?|directions?|rules?|"
            r"guidelines?|context|messages?|tasks?|constraints?)",
            _F,
        ),
        5,
    ),
    (
        re.compile(
            r"\b(?:strictly\s+)?(?:adhere|follow|obey|comply)\s+(?:to\s+|with\s+)?(?:the\s+)?"
            r"(?:following|these|new|my)\s+(?:instructions?|commands?|orders?|directions?)|"
            r"\bnew\s+(?:instructions?|task|objective|directive)s?\s*:|"
            r"\byour\s+(?:new|real|actual|true)\s+(?:task|goal|objective|instructions?|"
            r"purpose)\b|\bdo\s+not\s+(?:tell|inform|notify|mention\s+(?:this\s+)?to)\s+"
            r"(?:the\s+)?user\b|\bwithout\s+(?:telling|informing|asking)\s+(?:the\s+)?user\b",
            _F,
        ),
        5,
    ),
    (
        re.compile(
            r"<\|im_start\|>\s*(?:system|assistant)|<\|(?:system|assistant)\|>|\[/?INST\]|"
            r"<</?SYS>>|^\s*#{2,}\s*(?:instruction|system|new task)s?\b|"
            r"</?(?:system|instructions?)>|\bBEGIN\s+(?:SYSTEM|ADMIN)\s+(?:PROMPT|MESSAGE)",
            _F,
        ),
        5,
    ),
    (re.compile(r"^\s*(?:system|assistant|developer|admin)\s*(?:message|prompt)?\s*:", _F), 3),
    # Role markers in the middle of a line: upper case after a sentence, or a wrapped one.
    (
        re.compile(
            r"(?:[.!?]\s+|\)\s*)(?-i:SYSTEM|ASSISTANT|ADMIN|DEVELOPER)\s*:|"
            r"#{2,}\s*\(\s*(?:system|assistant|developer|admin)[ _-]?(?:message|prompt)\s*\)",
            _F,
        ),
        4,
    ),
    (
        re.compile(
            r"\b(?:assistant|agent|ai|bot)\s*,\s*(?:you\s+)?(?:must|need\s+to|have\s+to|"
            r"should|are\s+to)\b",
            _F,
        ),
        4,
    ),
    (
        re.compile(
            r"\b(?:(?:hey|dear|attention|note to|message (?:for|to)|to the)\s+(?:the\s+)?"
            r"(?:ai|llm|gpt|chat ?bot|assistant|agent|model|bot)s?\b|"
            r"\b(?:ai|llm) (?:assistant|agent|model)\s*[:,]|\bas an ai\b|"
            r"\byou (?:must|will|shall) now\b|\bfrom now on,? you\b)",
            _F,
        ),
        3,
    ),
    (re.compile(rf"\b{_POLITE}\s+(?:{STRONG_VERBS})\b", _F), 3),
    (re.compile(rf"\b{_POLITE}\s+(?:{WEAK_VERBS})\b", _F), 2),
    (re.compile(rf"{_CLAUSE}(?:{STRONG_VERBS})\b(?=\s+\S)", _F), 2),
    (re.compile(rf"{_CLAUSE}(?:{WEAK_VERBS})\b(?=\s+\S)", _F), 1),
    (
        re.compile(
            r"\b(?:and|then|,)\s+(?:then\s+)?(?:send|e-?mail|forward|share|post|upload|"
            r"transfer|wire)\s+(?:it|them|this|that|these|the|all|a|my|those|a copy)\b",
            _F,
        ),
        3,
    ),
    # Channel and role markers of chat templates and prompt wrappers, inside data.
    (
        re.compile(
            r"<\|(?:im_end|endoftext|eot_id|start_header_id|end_header_id)\|>|"
            r"^\s*#+\s*\(?\s*(?:system|assistant|developer|admin)[ _-]?"
            r"(?:message|prompt|instructions?|note)?\s*\)?\s*#*\s*:?|"
            r"\[\s*(?:system|admin|developer|assistant)(?:[ _-](?:message|note|prompt))?\s*\]|"
            r"</(?:untrusted|document|context|data|tool_output|tool_result|search_results?|"
            r"user_input|content)>\s*\S",
            _F,
        ),
        5,
    ),
    # Words to the agent from a claimed authority, and to-do lists addressed to it.
    (
        re.compile(
            r"\b(?:note|message|instructions?|request|reminder)\s+(?:from|by)\s+(?:the\s+)?"
            r"(?:developer|admin(?:istrator)?|system|operator|owner)s?\b|"
            r"\b(?:to-?do|tasks?|checklist|action items?)\s+(?:list\s+)?for\s+(?:the\s+)?"
            r"(?:ai|llm|assistant|agent|model|bot)\b|"
            r"\b(?:the\s+)?user\s+has\s+(?:already\s+)?(?:approved|authori[sz]ed|"
            r"confirmed|agreed)\b",
            _F,
        ),
        4,
    ),
    # A tool called by name ("call delete_file", "using the \"DbAdmin\" tool").
    (
        re.compile(
            r"\b(?i:call|invoke|use|using|run|execute|trigger)\s+(?:the\s+)?[`'\"]?"
            r"(?:[a-z][a-z0-9]*_[a-z0-9_]+|[a-z]+[A-Z][A-Za-z0-9]+|[A-Z][a-z]+[A-Z][A-Za-z0-9]+)"
            r"[`'\"]?(?:\s+tool\b|\s+(?:with|on|to)\b)",
            re.M,
        ),
        4,
    ),
    # Persona hijacks and fake fixtures: answer as someone else, produce "the expected output".
    (
        re.compile(
            r"\b(?:respond(?:ing)?|repl(?:y|ying)|act(?:ing)?|answer(?:ing)?|speak(?:ing)?)\s+"
            r"(?:exactly\s+|only\s+)?(?:as|like)\s+\w+\s+would\b|\bpretend\s+(?:to\s+be|you\s+are)\b|"
            r"\byou\s+are\s+now\s+(?:a|an|the|in)\b|\b(?:produce|print|output|give|return)\s+the\s+"
            r"(?:expected|required|correct)\s+(?:output|response|answer|reply)\b",
            _F,
        ),
        4,
    ),
    # Output directives: say exactly this token.
    (
        re.compile(
            r"\b(?i:reply|respond|answer|output|print|say|return|write)(?i:ing)?\s+"
            r"(?i:only\s+|exactly\s+|back\s+)?(?i:with\s+)?(?i:the\s+(?:code|token|word)\s+)?"
            r"[`'\"]?(?=[A-Z0-9_-]{6,})(?=[A-Z_-]*\d)[A-Z0-9][A-Z0-9_-]{5,}",
            re.M,
        ),
        4,
    ),
)
