"""The tag expression language: what it means, what it refuses, and that it never crashes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebox.domain.hardware_bundle import parse_bundle
from edgebox.domain.tag_ast import Field, Quantified, Quantifier
from edgebox.domain.tag_expression import (
    MAX_DEPTH,
    MAX_LENGTH,
    TagExpressionError,
    parse_tag_expression,
    tag_context,
)
from edgebox.domain.tag_vocabulary import COLLECTIONS, FIELDS, ValueType

# A GPU server as the commissioning parser would describe it (contract §2).
GPU_SERVER: dict[str, Any] = {
    "system": {"vendor": "Dell Inc.", "product": "PowerEdge R750xa", "serial": "7X1Y2Z3"},
    "cpu": {
        "model": "AMD EPYC 7543 32-Core Processor",
        "arch": "x86_64",
        "sockets": 2,
        "cores": 64,
        "threads": 128,
        "mhz": 2800.0,
        "flags": ["sse4_2", "avx2", "sev"],
    },
    "memory": {
        "total_mib": 515_000,  # MemTotal: a little below what is installed
        "dimms": [{"locator": f"A{i}", "size_mib": 65536, "type": "DDR4"} for i in range(8)],
    },
    "disks": [
        {"name": "nvme0n1", "type": "nvme", "size_bytes": 960_197_124_096, "rotational": False},
        {"name": "sda", "type": "hdd", "size_bytes": 4_000_787_030_016, "rotational": True},
    ],
    "nics": [
        {"name": "eno1", "driver": "bnxt_en", "speed_mbps": 25000, "link": True},
        {"name": "eno2", "driver": "bnxt_en", "speed_mbps": None, "link": False},
    ],
    "pci": [
        {"address": "0000:41:00.0", "vendor_id": "10de", "device_id": "20b5", "kind": "gpu"},
        {"address": "0000:c1:00.0", "vendor_id": "15b3", "device_id": "101b", "kind": "network"},
    ],
    "gpus": [
        {"address": "0000:41:00.0", "vendor": "nvidia", "vendor_id": "10de", "name": "A100"},
        {"address": "0000:03:00.0", "vendor": "other", "vendor_id": "102b", "name": "G200eR2"},
    ],
    "firmware": {"type": "uefi", "secure_boot": None, "vendor": "Dell Inc.", "version": "1.9.2"},
    "bmc": {"present": True, "type": "ipmi"},
}

SMALL_VM: dict[str, Any] = {
    "cpu": {"model": "QEMU Virtual CPU", "arch": "x86_64", "cores": 2, "threads": 2},
    "memory": {"total_mib": 2048, "dimms": []},
    "disks": [{"name": "vda", "type": "virtual", "size_bytes": 10 * 2**30}],
    "nics": [],
    "gpus": [],
    "pci": [],
    "firmware": {"type": "bios"},
    "bmc": {"present": False, "type": None},
}


def holds(expression: str, inventory: dict[str, Any] | None) -> bool:
    return parse_tag_expression(expression).evaluate(tag_context(inventory))


def refusal(expression: str) -> TagExpressionError:
    with pytest.raises(TagExpressionError) as caught:
        parse_tag_expression(expression)
    return caught.value


# -- meaning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "on_gpu_server", "on_small_vm"),
    [
        ('gpu.vendor == "nvidia" and memory_gib >= 256', True, False),
        ('any(disk.type == "nvme")', True, False),
        ("memory_gib == 512", True, False),  # installed: eight 64 GiB DIMMs, not MemTotal
        ("memory_mib < 4096", False, True),  # no DIMMs listed: memory.total_mib
        ("cpu.cores >= 64 and cpu.threads == 128 and cpu.sockets == 2", True, False),
        ('cpu.arch == "x86_64" and arch == "x86_64"', True, True),
        ('"avx2" in cpu.flags', True, False),
        ('"avx512f" not in cpu.flags', True, False),  # the VM has no flags: unknown, not absent
        ('"EPYC" in cpu.model', True, False),
        ('"epyc" in cpu.model', False, False),  # substring tests are case-sensitive
        ('cpu.model matches "EPYC 7[0-9]{2}3"', True, False),
        ('cpu.model matches "(?i)epyc"', True, False),
        ('system.product matches "^PowerEdge R[67]"', True, False),
        ("count(disk) == 2", True, False),
        ("count(disk) == 1 and count(gpu) == 0", False, True),
        ('count(disk.type == "hdd") == 1', True, False),
        ("all(disk.size_gb > 900)", True, False),
        ('all(gpu.vendor == "amd")', False, True),  # all() of nothing is true
        ("any(gpu)", True, False),
        ("any(disk.size_gib > 3000 and disk.rotational)", True, False),
        ('disk.size_gib < 10.5 and disk.type == "virtual"', False, True),
        ("nic.speed_gbps >= 25", True, False),
        ('nic.driver == "bnxt_en" and nic.link == false', True, False),  # some NIC is down
        ("not nic.link", False, True),  # no NIC has a link
        ('pci.vendor_id == "10de" and pci.kind == "gpu"', True, False),
        ('gpu.vendor in ["nvidia", "amd"]', True, False),
        ('dimm.type == "DDR4" and count(dimm) == 8', True, False),
        ('firmware.type == "uefi"', True, False),
        ("firmware.secure_boot == null", True, True),
        ("bmc.present", True, False),
        ("not bmc.present", False, True),
        ('bmc.type != null and bmc.type == "ipmi"', True, False),
        ('system.vendor == "Dell Inc." or system.vendor == null', True, True),
        ("true", True, True),
        ("false or (true and not false)", True, True),
        ("cpu.mhz > 2799.5", True, False),
        ("cpu.cores > -1", True, True),
        ("cpu.cores == 6.4e1", True, False),
    ],
)
def test_meaning(expression: str, on_gpu_server: bool, on_small_vm: bool) -> None:
    assert holds(expression, GPU_SERVER) is on_gpu_server
    assert holds(expression, SMALL_VM) is on_small_vm


def test_precedence_not_then_and_then_or() -> None:
    # not binds tighter than and, and tighter than or.
    assert holds("not false and false", {}) is False  # (not false) and false
    assert holds("true or true and false", {}) is True  # true or (true and false)
    assert holds("(true or true) and false", {}) is False
    assert holds("not (true and false)", {}) is True


@pytest.mark.parametrize(
    "expression",
    [
        "firmware.secure_boot == true",
        "firmware.secure_boot != true",  # != with an unknown value is false too
        "firmware.secure_boot == false",
        "cpu.mhz > 0",
        "cpu.mhz <= 0",
        '"x" in cpu.model',
        '"x" not in cpu.model',
        'cpu.model matches "."',
        'system.vendor != "Dell Inc."',
        "cpu.cores == cpu.threads",  # two unknowns are not known to be equal
    ],
)
def test_every_comparison_with_an_unknown_value_is_false(expression: str) -> None:
    assert holds(expression, {"cpu": {}}) is False


def test_only_null_tests_for_an_unknown_value() -> None:
    assert holds("cpu.mhz == null", {"cpu": {}}) is True
    assert holds("cpu.mhz != null", {"cpu": {}}) is False
    assert holds("null != cpu.cores", {"cpu": {"cores": 4}}) is True
    # `not (x == v)` and `x != v` differ exactly when x is unknown.
    assert holds('not gpu.vendor == "x"', {"gpus": [{"vendor": None}]}) is True
    assert holds('gpu.vendor != "x"', {"gpus": [{"vendor": None}]}) is False


def test_a_collection_field_outside_a_function_means_some_element() -> None:
    two = {"gpus": [{"vendor": "amd"}, {"vendor": "nvidia"}]}
    assert holds('gpu.vendor == "nvidia"', two) is True
    assert holds('gpu.vendor != "nvidia"', two) is True  # the AMD one
    assert holds('not gpu.vendor == "nvidia"', two) is False  # "no NVIDIA GPU"
    assert holds('not gpu.vendor == "intel"', two) is True
    assert holds('gpu.vendor == "nvidia"', {"gpus": []}) is False


def test_the_comparison_is_the_unit_outside_a_function_but_not_inside() -> None:
    disks = {
        "disks": [
            {"type": "nvme", "size_bytes": 500 * 10**9},
            {"type": "hdd", "size_bytes": 8000 * 10**9},
        ]
    }
    # Two different disks satisfy the two comparisons...
    assert holds('disk.type == "nvme" and disk.size_gb > 1000', disks) is True
    # ...but no one disk satisfies both.
    assert holds('any(disk.type == "nvme" and disk.size_gb > 1000)', disks) is False
    assert holds('any(disk.type == "hdd" and disk.size_gb > 1000)', disks) is True


def test_the_parser_makes_the_implicit_any_explicit() -> None:
    root = parse_tag_expression('gpu.vendor == "nvidia"').root
    assert isinstance(root, Quantified)
    assert (root.quantifier, root.collection, root.implicit) == (Quantifier.ANY, "gpu", True)
    explicit = parse_tag_expression('any(gpu.vendor == "nvidia")').root
    assert isinstance(explicit, Quantified) and not explicit.implicit
    assert explicit.condition == root.condition


def test_count_all_any_of_a_bare_collection() -> None:
    three: dict[str, Any] = {"nics": [{}, {}, {}]}
    assert holds("count(nic) == 3", three) is True
    assert holds("any(nic)", three) is True
    assert holds("any(nic)", {"nics": []}) is False
    assert holds("all(nic)", {"nics": []}) is True
    assert holds("count(nic.link) == 0", three) is True


def test_a_machine_that_never_reported_an_inventory_matches_no_definition() -> None:
    for expression in ("true", "not bmc.present", "count(disk) == 0", "cpu.cores == null"):
        assert holds(expression, None) is False
    # An empty inventory has been reported: it simply knows nothing.
    assert holds("count(disk) == 0", {}) is True
    assert holds("cpu.cores == null", {}) is True


def test_values_of_the_wrong_type_become_null_never_an_error() -> None:
    odd = {
        "cpu": {"cores": "64", "threads": True, "flags": ["avx", 7, None], "model": 5},
        "memory": {"total_mib": float("nan"), "dimms": "many"},
        "disks": [{"size_bytes": "1e12", "rotational": "yes"}, "not an object", None],
        "gpus": {"vendor": "nvidia"},
        "firmware": ["uefi"],
    }
    context = tag_context(odd)
    assert context.fields["cpu.cores"] is None
    assert context.fields["cpu.threads"] is None  # a boolean is not a number
    assert context.fields["cpu.flags"] == ("avx",)
    assert context.fields["cpu.model"] is None
    assert context.fields["memory_gib"] is None
    assert context.fields["firmware.type"] is None
    assert context.collections["disk"] == (dict.fromkeys(COLLECTIONS["disk"]),)
    assert context.collections["gpu"] == ()
    assert context.collections["dimm"] == ()
    assert holds("cpu.cores >= 1 or disk.size_gb > 0 or disk.rotational", odd) is False


def test_derived_fields_and_the_enlistment_inventory() -> None:
    context = tag_context(
        {
            "dmi": {"vendor": "QEMU", "product": "Standard PC"},
            "memory_mib": 3072,
            "disks": [{"size_bytes": 2 * 10**12}],
            "nics": [{"speed_mbps": 10000}],
            "memory": {"dimms": [{"size_mib": 1536}]},
        }
    )
    assert context.fields["system.vendor"] == "QEMU"
    assert context.fields["memory_mib"] == 1536  # the DIMMs win over the enlisted figure
    assert context.fields["memory_gib"] == 1.5
    assert context.collections["disk"][0]["size_gb"] == 2000
    assert context.collections["disk"][0]["size_gib"] == pytest.approx(1862.645, abs=1e-3)
    assert context.collections["nic"][0]["speed_gbps"] == 10
    assert context.collections["dimm"][0]["size_gib"] == 1.5
    assert tag_context({"memory_mib": 3072}).fields["memory_gib"] == 3


def test_memory_falls_back_to_total_mib_when_a_dimm_size_is_unknown() -> None:
    memory = {"total_mib": 3000, "dimms": [{"size_mib": 1024}, {"size_mib": None}]}
    assert tag_context({"memory": memory}).fields["memory_mib"] == 3000


def test_the_language_reads_what_the_bundle_parser_writes() -> None:
    """The contract's two sides: `parse_bundle` output (§2) is what definitions see."""
    gpu = "/sys/bus/pci/devices/0000:41:00.0/"
    text = "".join(
        [
            "=== /proc/cpuinfo\n",
            "processor\t: 0\nphysical id\t: 0\ncpu cores\t: 2\nmodel name\t: AMD EPYC 7543\n"
            "flags\t\t: fpu sse2 avx2\n\n",
            "processor\t: 1\nphysical id\t: 0\ncpu cores\t: 2\nmodel name\t: AMD EPYC 7543\n"
            "flags\t\t: fpu sse2 avx2\n",
            "=== /proc/meminfo\nMemTotal:        8388608 kB\n",
            "=== command uname -m\nx86_64\n",
            "=== /sys/class/dmi/id/sys_vendor\nDell Inc.\n",
            "=== /sys/block/nvme0n1/size\n1875385008\n",
            "=== /sys/block/nvme0n1/queue/rotational\n0\n",
            "=== link /sys/block/nvme0n1\n/sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/"
            "nvme/nvme0/nvme0n1\n",
            f"=== {gpu}vendor\n0x10de\n=== {gpu}device\n0x20b5\n=== {gpu}class\n0x030200\n",
        ]
    )
    inventory = parse_bundle(text)
    for expression, expected in [
        ('gpu.vendor == "nvidia" and pci.vendor_id == "10de"', True),
        ('any(disk.type == "nvme" and disk.size_gb > 900 and not disk.rotational)', True),
        ("memory_gib == 8 and cpu.threads == 2 and cpu.sockets == 1", True),
        ('"avx2" in cpu.flags and cpu.model matches "EPYC 7[0-9]{3}"', True),
        ('arch == "x86_64" and system.vendor == "Dell Inc."', True),
        ("count(gpu) == 1 and count(nic) == 0 and bmc.present == false", True),
        ('firmware.type == "uefi"', False),
    ]:
        assert holds(expression, inventory) is expected, (expression, inventory)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('any(disk.type == "nvme" and disk.size_gib == 1)', True),
        ('count(disk.type == "virtual") == 2 and all(disk.size_gb < 4)', True),
        ('any(nic.driver == "e1000" and nic.speed_gbps == 1 and nic.link)', True),
        ("nic.speed_mbps == null", True),  # virtio_net reports no speed
        ("memory_gib == 0.5 and count(dimm) == 1", True),
        ("count(gpu) == 0", True),  # the QEMU display is not counted as a GPU
        ('pci.vendor_id == "1af4" and pci.kind == "storage"', True),
        ('"avx2" in cpu.flags and cpu.threads == 2', True),
        ('system.product == "EphemeralTest" and system.vendor matches "^Edgebox"', True),
        ('firmware.type == "bios" and firmware.secure_boot == false', True),
        ('bmc.present and bmc.type == "ipmi"', True),
        ('firmware.type == "uefi" or any(gpu)', False),
    ],
)
def test_definitions_over_a_captured_qemu_bundle(expression: str, expected: bool) -> None:
    capture = Path(__file__).parent / "hardware_bundles" / "qemu-q35-bios.txt"
    assert holds(expression, parse_bundle(capture.read_text())) is expected


def test_every_vocabulary_name_parses_and_evaluates() -> None:
    samples = {"a number": "0", "a string": '""', "a boolean": "true"}
    for name, kind in FIELDS.items():
        if kind.value == "a list of strings":
            expression = f'"x" in {name}'
        else:
            expression = f"{name} != {samples[kind.value]}"
        assert holds(expression, GPU_SERVER) in (True, False)
    for collection, fields in COLLECTIONS.items():
        for field in fields:
            assert holds(f"{collection}.{field} == null", GPU_SERVER) in (True, False)
            root = parse_tag_expression(f"any({collection}.{field} != null)").root
            assert isinstance(root, Quantified) and root.collection == collection


def test_the_user_documentation_lists_every_name_and_its_examples_parse() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "tags.md").read_text()
    for name in FIELDS:
        assert f"`{name}`" in doc, name
    for collection, fields in COLLECTIONS.items():
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{collection}` |"))
        assert all(f"`{field}`" in row for field in fields), collection
    examples = doc.split("## Examples", 1)[1].split("```")[1].strip().splitlines()
    assert len(examples) >= 5
    for example in examples:
        assert holds(example, GPU_SERVER) in (True, False)


def test_the_tree_is_immutable() -> None:
    root = parse_tag_expression('any(disk.type == "nvme")').root
    assert isinstance(root, Quantified)
    with pytest.raises(dataclasses.FrozenInstanceError):
        root.collection = "gpu"  # type: ignore[misc]
    field = Field("type", "disk")
    with pytest.raises(dataclasses.FrozenInstanceError):
        field.name = "__class__"  # type: ignore[misc]


def test_strings_quotes_and_escapes() -> None:
    product = {"system": {"product": 'It\'s "quoted" \\ here'}}
    assert holds("system.product == 'It\\'s \"quoted\" \\\\ here'", product) is True
    assert holds('system.product == "It\'s \\"quoted\\" \\\\ here"', product) is True
    assert holds('system.product matches "\\\\ h"', product) is True


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "column", "words"),
    [
        ("memory_gib ==", 14, "expected a value after '==', found end of expression"),
        ("memroy_gib >= 256", 1, "unknown name 'memroy_gib'; did you mean 'memory_gib'?"),
        ("disk.tpye == 'nvme'", 1, "did you mean 'disk.type'?"),
        ("disks.type == 'nvme'", 1, "did you mean 'disk.type'?"),
        ("cpu == 4", 1, "cpu is a group of fields"),
        ("memory_gib = 256", 12, "compare with '=='"),
        ("memory_gib >= 256G", 15, "'256G' is not a number"),
        ("a && b", 3, "use 'and'"),
        ("!bmc.present", 1, "use 'not'"),
        ("memory_gib + 1 > 2", 12, "there is no arithmetic"),
        ("cpu.model == 'EPYC", 14, "has no closing '"),
        ("", 1, "empty expression"),
        ("   ", 4, "empty expression"),
        ("bmc.present and", 16, "expected a condition after 'and', found end of expression"),
        ("not", 4, "expected a condition after 'not'"),
        ("(bmc.present", 13, "expected ')' to close the '(' at column 1"),
        ("bmc.present)", 12, "expected 'and', 'or' or the end of the expression, found ')'"),
        ("memory_gib", 1, "needs a condition, but memory_gib is a number"),
        ("bmc.present and cpu.model", 17, "'and' needs a condition, but cpu.model is a string"),
        ('memory_gib > "big"', 12, 'memory_gib is a number and "big" is a string'),
        ("bmc.present > false", 13, "orders numbers or strings"),
        ("cpu.flags == 'avx2'", 1, 'test membership with "value" in cpu.flags'),
        ("disk == 2", 1, "it is a collection; compare one of its fields or count(disk)"),
        ("disk", 1, "use any(disk), count(disk) > 0"),
        ("count(disk)", 1, "count(disk) is a number"),
        ("memory_gib < null", 12, "null can only be compared with == or !="),
        ("null == null", 6, "comparing null with null"),
        ("1 < 2 < 3", 7, "cannot be chained"),
        ("4 in cpu.flags", 3, "cannot be in cpu.flags"),
        ("cpu.model in 4", 14, "'in' needs a string, a list of strings or a [list]"),
        ("memory_gib in [1, 'x']", 19, "a list holds values of one kind"),
        ("memory_gib in [cpu.cores]", 16, "a list holds numbers, strings, true or false"),
        ("cpu.model matches cpu.arch", 19, "needs a quoted pattern"),
        ("memory_gib matches '1'", 1, "'matches' tests a string"),
        ("any()", 5, "expected a condition inside any()"),
        ("any disk", 5, "expected '(' after any"),
        ("any(disk.rotational", 20, "expected ')' to close any("),
        ("any(disk.rotational, true)", 20, "expected ')' to close any("),
        ("any(memory_gib > 1)", 5, "names none"),
        ("all(disk.rotational and nic.link)", 5, "names disk and nic"),
        ("disk.size_gb > nic.speed_gbps", 1, "one comparison may speak of one collection"),
        ("any(count(disk) > 1)", 5, "count() cannot be used inside any()"),
        ("True", 1, "keywords are lowercase: true"),
        ("bmc.present AND true", 13, "found the name 'AND'"),
        ("None == cpu.model", 1, "an unknown value is null"),
        ("disk.", 6, "expected a field name after '.', found end of expression"),
    ],
)
def test_refusals_name_the_column_and_what_was_expected(
    expression: str, column: int, words: str
) -> None:
    error = refusal(expression)
    assert error.column == column, str(error)
    assert words in str(error)
    assert str(error).startswith(f"column {column}: ")


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('id')",
        "eval('1')",
        "exec('x = 1')",
        "open('/etc/passwd')",
        "getattr(disk, 'type')",
        "len(disk) > 1",
        "disk.type.__class__",
        "disk.__class__.__bases__",
        "cpu.model.upper() == 'X'",
        "().__class__.__bases__[0].__subclasses__()",
        "lambda: 1",
        "lambda x: x",
        "[x for x in disk]",
        "memory_gib if true else false",
        "import os",
        "cpu.flags[0] == 'avx'",
        "{'a': 1}",
        "f'{memory_gib}' == '1'",
        "`id`",
        "memory_gib; true",
        "memory_gib := 5",
        "memory_gib ** 2 > 4",
        "memory_gib >= 0x10",
        "memory_gib >= 1_000",
        "'a' 'b' == 'ab'",
        "bmc.present and and true",
        "not not",
        "true true",
        "any(any)",
        "count(count(disk))",
        "disk..type == 'x'",
        "$memory_gib > 1",
        "memory_gib > 1 # comment",
        "memory_gib\x00> 1",
        "mémoire > 1",
        "all[disk]",
        "[1, 2] == [1, 2]",
        "'x' in ['x',]",
    ],
)
def test_anything_outside_the_grammar_is_refused(expression: str) -> None:
    refusal(expression)


def test_the_length_limit() -> None:
    longest = "true" + " or true" * ((MAX_LENGTH - 4) // 8)
    assert len(longest) <= MAX_LENGTH
    assert holds(longest, {}) is True
    error = refusal(longest + " " * (MAX_LENGTH - len(longest)) + "x")
    assert error.column == MAX_LENGTH + 1
    assert f"longer than {MAX_LENGTH} characters" in str(error)


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("not ", "")])
def test_the_depth_limit(opening: str, closing: str) -> None:
    assert holds(opening * MAX_DEPTH + "true" + closing * MAX_DEPTH, {}) in (True, False)
    error = refusal(opening * (MAX_DEPTH + 1) + "true" + closing * (MAX_DEPTH + 1))
    assert f"more than {MAX_DEPTH} levels deep" in str(error)


def test_very_deep_input_is_refused_not_a_recursion_error() -> None:
    error = refusal("(" * 900 + "true" + ")" * 90)
    assert "levels deep" in str(error)
    error = refusal("not " * 240)
    assert "levels deep" in str(error)


# -- regular expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(a+)+$", "a group may not be repeated"),
        ("(a|aa)*b", "a group may not be repeated"),
        ("(?:x*){2,}", "a group may not be repeated"),
        ("a*b*c*", "at most 2 repetitions"),
        ("a{1,5}b{2}c+", "at most 2 repetitions"),
        ("(x)\\1", "back-references"),
        ("(?P<n>x)(?P=n)", "back-references"),
        ("x" * 101, "longer than 100 characters"),
        ("[unclosed", "not a regular expression"),
        ("a**", "not a regular expression"),
    ],
)
def test_patterns_that_could_backtrack_for_ever_are_refused(pattern: str, words: str) -> None:
    error = refusal(f"cpu.model matches '{pattern}'")
    assert error.column == 19  # the pattern's own column
    assert words in str(error)


def test_allowed_patterns_stay_fast_on_the_worst_subjects() -> None:
    expression = parse_tag_expression(r"any(disk.model matches '\w*\w+;')")
    inventory = tag_context({"disks": [{"model": "a" * 10_000}] * 20})
    started = time.perf_counter()
    assert expression.evaluate(inventory) is False
    assert time.perf_counter() - started < 2.0


def test_character_classes_and_escapes_do_not_count_as_groups_or_repeats() -> None:
    assert holds(r"system.product matches '[()*+]\(\)\*\+x+y*'", {"system": {"product": "(()*+xx"}})
    assert holds("system.product matches '[]a]+'", {"system": {"product": "]"}})


# -- fuzzing ----------------------------------------------------------------------------------

_WORDS = [
    *FIELDS,
    *(f"{c}.{f}" for c, fields in COLLECTIONS.items() for f in fields),
    *COLLECTIONS,
    "and", "or", "not", "in", "matches", "true", "false", "null", "any", "all", "count",
    "(", ")", "[", "]", ",", ".", "==", "!=", "<", "<=", ">", ">=",
    "0", "1", "-2", "2.5", "'nvme'", '"x"', "'(a+)+'", "'^R[67]'", "foo", "__import__",
]  # fmt: skip

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "vendor", "size_bytes", "flags", "cores", "present", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_INVENTORIES = st.none() | st.dictionaries(
    st.sampled_from(
        ["cpu", "memory", "disks", "nics", "gpus", "pci", "firmware", "bmc", "system", "dmi"]
    ),
    _JSON,
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_tag_expression_error(text: str) -> None:
    try:
        parse_tag_expression(text)
    except TagExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1 or exc.column == MAX_LENGTH + 1


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_WORDS), max_size=25), _INVENTORIES)
def test_token_soup_parses_or_is_refused_and_evaluates_without_error(
    words: list[str], inventory: dict[str, Any] | None
) -> None:
    text = " ".join(words)
    try:
        expression = parse_tag_expression(text)
    except TagExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    assert expression.evaluate(tag_context(inventory)) in (True, False)


def _comparisons(names: dict[str, ValueType]) -> st.SearchStrategy[str]:
    """Well-typed comparisons over `names` (fields, or one collection's fields)."""
    values = {
        ValueType.NUMBER: st.integers(-5, 5000).map(str) | st.just("2.5"),
        ValueType.STRING: st.sampled_from(['"nvme"', '"nvidia"', "'x86_64'", '""', '"a"']),
        ValueType.BOOLEAN: st.sampled_from(["true", "false"]),
    }
    choices = []
    for name, kind in names.items():
        if kind is ValueType.STRINGS:
            choices.append(st.sampled_from([f'"avx2" in {name}', f"'sev' not in {name}"]))
            continue
        ops = ["==", "!="] if kind is ValueType.BOOLEAN else ["==", "!=", "<", "<=", ">", ">="]
        compared = st.tuples(st.sampled_from(ops), values[kind] | st.just("null")).filter(
            lambda pair: pair[1] != "null" or pair[0] in ("==", "!=")
        )
        choices.append(compared.map(lambda pair, n=name: f"{n} {pair[0]} {pair[1]}"))
        if kind is ValueType.STRING:
            choices.append(st.just(f"{name} matches '^[a-z]+$'"))
            choices.append(st.just(f'"a" in {name}'))
        if kind is ValueType.BOOLEAN:
            choices.append(st.just(name))
    return st.one_of(choices)


_ELEMENT_CONDITIONS = st.one_of(
    [
        _comparisons({f"{c}.{f}": k for f, k in fields.items()}).map(
            lambda text, c=c: f"{c}:{text}"
        )
        for c, fields in COLLECTIONS.items()
    ]
)
_CONDITIONS = st.recursive(
    _comparisons(dict(FIELDS))
    | _ELEMENT_CONDITIONS.map(lambda text: text.split(":", 1)[1])  # implicit any
    | st.tuples(st.sampled_from(["any", "all"]), _ELEMENT_CONDITIONS).map(
        lambda pair: f"{pair[0]}({pair[1].split(':', 1)[1]})"
    )
    | st.tuples(st.sampled_from(sorted(COLLECTIONS)), st.integers(0, 3)).map(
        lambda pair: f"count({pair[0]}) >= {pair[1]}"
    ),
    lambda inner: (
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda parts: f"({parts[0]}) {parts[1]} ({parts[2]})"
        )
        | inner.map(lambda text: f"not ({text})")
    ),
    max_leaves=6,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    _CONDITIONS,
    _CONDITIONS,
    st.sampled_from([GPU_SERVER, SMALL_VM, {}]) | _INVENTORIES.filter(lambda i: i is not None),
)
def test_generated_definitions_parse_and_obey_boolean_logic(
    first: str, second: str, inventory: dict[str, Any]
) -> None:
    context = tag_context(inventory)
    a = parse_tag_expression(first).evaluate(context)
    b = parse_tag_expression(second).evaluate(context)
    assert a in (True, False) and b in (True, False)
    assert parse_tag_expression(f"not ({first})").evaluate(context) is (not a)
    assert parse_tag_expression(f"({first}) and ({second})").evaluate(context) is (a and b)
    assert parse_tag_expression(f"({first}) or ({second})").evaluate(context) is (a or b)
    # Never-reported machines match nothing, whatever the definition.
    assert parse_tag_expression(f"not ({first})").evaluate(tag_context(None)) is False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_INVENTORIES)
def test_any_inventory_builds_a_context_that_evaluates(inventory: dict[str, Any] | None) -> None:
    context = tag_context(inventory)
    for expression in (
        'gpu.vendor == "nvidia" and memory_gib >= 256',
        "count(disk.size_gb > 1) >= 0 or any(nic.link) or all(pci.kind != null)",
        '"avx" in cpu.flags or firmware.secure_boot or bmc.present',
        "not (cpu.cores == null) and system.vendor matches 'a'",
    ):
        assert parse_tag_expression(expression).evaluate(context) in (True, False)
