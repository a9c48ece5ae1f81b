"""Client tools as sentrail tool calls (the table in docs/hooks.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sentrail.hooks.mapping import (
    MAX_PARAM_CHARS,
    MAX_RESULT_CHARS,
    Paths,
    bounded_value,
    claude_tool,
    codex_tool,
    patch_files,
    snake,
    tool_result,
)
from sentrail.hooks.policy import hook_policy
from sentrail.policy.bundle import RiskClass

CWD = "/home/user/my-project"


@pytest.mark.parametrize(
    ("name", "tool_input", "tool", "params", "resource", "permissions"),
    [
        (
            "Bash",
            {"command": "ls -la", "timeout": 5},
            "shell.exec",
            {"command": "ls -la"},
            CWD,
            ["shell:exec"],
        ),
        (
            "Read",
            {"file_path": f"{CWD}/src/a.py"},
            "files.read",
            {"path": "src/a.py"},
            f"{CWD}/src/a.py",
            ["files:read"],
        ),
        (
            "Write",
            {"file_path": "/etc/cron.d/job", "content": "x"},
            "files.write",
            {"path": "/etc/cron.d/job", "content": "x"},
            "/etc/cron.d/job",
            ["files:write"],
        ),
        (
            "Edit",
            {"file_path": "src/b.py", "old_string": "a", "new_string": "b"},
            "files.write",
            {"path": "src/b.py", "content": "b"},
            f"{CWD}/src/b.py",
            ["files:write"],
        ),
        (
            "MultiEdit",
            {
                "file_path": f"{CWD}/c.py",
                "edits": [
                    {"old_string": "1", "new_string": "2"},
                    {"old_string": "3", "new_string": "4"},
                ],
            },
            "files.write",
            {"path": "c.py", "content": "2\n4"},
            f"{CWD}/c.py",
            ["files:write"],
        ),
        (
            "NotebookEdit",
            {"notebook_path": f"{CWD}/n.ipynb", "new_source": "print(1)"},
            "files.write",
            {"path": "n.ipynb", "content": "print(1)"},
            f"{CWD}/n.ipynb",
            ["files:write"],
        ),
        (
            "Glob",
            {"pattern": "**/*.py"},
            "files.search",
            {"path": ".", "pattern": "**/*.py"},
            CWD,
            ["files:read"],
        ),
        (
            "Grep",
            {"pattern": "TODO", "path": "src", "glob": "*.py"},
            "files.search",
            {"path": "src", "pattern": "TODO", "glob": "*.py"},
            f"{CWD}/src",
            ["files:read"],
        ),
        (
            "WebFetch",
            {"url": "https://example.org/", "prompt": "sum"},
            "http.get",
            {"url": "https://example.org/", "prompt": "sum"},
            "https://example.org/",
            ["net:fetch"],
        ),
        (
            "WebSearch",
            {"query": "cel spec"},
            "web.search",
            {"query": "cel spec"},
            None,
            ["net:search"],
        ),
        (
            "Task",
            {"description": "d", "prompt": "p", "subagent_type": "general"},
            "agent.delegate",
            {"description": "d", "prompt": "p", "subagent_type": "general"},
            None,
            ["agent:delegate"],
        ),
        (
            "TodoWrite",
            {"todos": [{"content": "x"}]},
            "agent.todo",
            {"todos": '[{"content":"x"}]'},
            None,
            [],
        ),
        (
            "mcp__github__create_issue",
            {"title": "t"},
            "github.create_issue",
            {"title": "t"},
            None,
            ["mcp:github"],
        ),
        ("mcp__my server__do it", {}, "my_server.do_it", {}, None, ["mcp:my_server"]),
        ("ExitPlanMode", {"plan": "p"}, "agent.plan", {"plan": "p"}, None, []),
        ("SomeFutureTool", {"x": 1}, "claude.some_future_tool", {"x": 1}, None, []),
    ],
)
def test_claude_code_tools(
    name: str,
    tool_input: dict[str, Any],
    tool: str,
    params: dict[str, Any],
    resource: str | None,
    permissions: list[str],
) -> None:
    spec = claude_tool(name, tool_input, CWD)
    assert (spec.tool, spec.parameters, spec.resource, spec.permissions) == (
        tool,
        params,
        resource,
        permissions,
    )
    assert spec.action == name


def test_every_mapped_tool_is_registered_in_the_built_in_policy() -> None:
    policy = hook_policy(None)
    for tool in (
        "shell.exec",
        "files.read",
        "files.write",
        "files.patch",
        "files.search",
        "files.list",
        "http.get",
        "web.search",
        "agent.delegate",
        "agent.todo",
        "agent.plan",
        "agent.command",
        "shell.read_output",
        "shell.kill",
    ):
        _, registered = policy.registry.classify(tool)
        assert registered, tool
    assert policy.registry.classify("shell.exec")[0] is RiskClass.SENSITIVE_WRITE
    assert policy.registry.classify("files.read")[0] is RiskClass.READ_ONLY


def test_codex_tools() -> None:
    bash = codex_tool("Bash", {"command": "cargo test"}, CWD)
    assert (bash.tool, bash.parameters, bash.resource) == (
        "shell.exec",
        {"command": "cargo test"},
        CWD,
    )
    mcp = codex_tool("mcp__fs__read_file", {"path": "/x"}, CWD)
    assert (mcp.tool, mcp.parameters) == ("fs.read_file", {"path": "/x"})
    other = codex_tool("update_plan", {"plan": []}, CWD)
    assert other.tool == "codex.update_plan"
    patch = "*** Begin Patch\n*** Update File: a.py\n*** Move to: /tmp/b.py\n*** End Patch"
    moved = codex_tool("apply_patch", {"command": patch}, CWD)
    assert moved.parameters["files"] == ["a.py", "/tmp/b.py"]
    assert "deletes" not in moved.parameters and moved.resource == f"{CWD}/a.py"


def test_paths_are_relative_inside_the_workspace_and_resolve_symlinks(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    outside = tmp_path / "secrets"
    outside.mkdir()
    os.symlink(outside, project / "link")
    paths = Paths(str(project))
    assert paths.shown(str(project / "src" / "a.py")) == "src/a.py"
    assert paths.shown("src/../src/a.py") == "src/a.py"
    assert paths.shown("../escape.txt") == str(tmp_path / "escape.txt")
    assert paths.shown(str(project / "link" / "key")) == str(outside / "key")  # not inside
    assert Paths("").shown("relative/x") == "relative/x"
    files, deleted = patch_files("*** Delete File: link/key\n", paths)
    assert files == deleted == [str(outside / "key")]


def test_sizes_are_bounded() -> None:
    spec = claude_tool("Bash", {"command": "x" * (MAX_PARAM_CHARS + 10)}, CWD)
    assert len(spec.parameters["command"]) < MAX_PARAM_CHARS + 100
    assert "cut by sentrail" in spec.parameters["command"]
    small = {"a": [1, 2, 3]}
    assert bounded_value(small) is small
    big = bounded_value({"text": "y" * (MAX_RESULT_CHARS * 2)})
    assert isinstance(big, str) and len(big) < MAX_RESULT_CHARS + 100
    assert "cut by sentrail" in big


def test_tool_results_take_their_status_from_the_usual_fields() -> None:
    assert tool_result({"stdout": "ok", "interrupted": False}).status == "success"
    assert tool_result({"success": False}).status == "error"
    assert tool_result({"code": 404, "result": "Not Found"}).status == "error"
    assert tool_result({"isError": True, "content": []}).status == "error"
    assert tool_result({"interrupted": True}).status == "error"
    assert tool_result("plain text").status == "success"
    assert tool_result([{"type": "text", "text": "x"}]).data == [{"type": "text", "text": "x"}]


def test_names_are_made_safe() -> None:
    assert snake("ExitPlanMode") == "exit_plan_mode"
    assert snake("../../weird name") == "weird_name"
    assert snake("") == "unnamed"
