"""normalise_request_path: firmware spellings accepted, escapes refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgebox.wire.tftp import RequestPathError, normalise_request_path


@pytest.mark.parametrize(
    ("requested", "normalised"),
    [
        ("undionly.kpxe", "undionly.kpxe"),
        ("/undionly.kpxe", "undionly.kpxe"),  # DHCP boot filename written with a leading slash
        ("//efi//x64/snponly.efi", "efi/x64/snponly.efi"),
        ("\\Boot\\BCD", "Boot/BCD"),  # Windows boot manager style
        ("boot\\x64/wdsnbp.com", "boot/x64/wdsnbp.com"),
        ("./grub/./grub.cfg", "grub/grub.cfg"),
        ("dir/", "dir"),
        ("...", "..."),  # a legal, if odd, file name
        ("a..b/c", "a..b/c"),
        ("CaSe.EFI", "CaSe.EFI"),  # case is preserved
        ("ünïcode.efi", "ünïcode.efi"),
    ],
)
def test_accepted_spellings(requested: str, normalised: str) -> None:
    assert normalise_request_path(requested) == normalised


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        ("", "names no file"),
        ("/", "names no file"),
        ("\\", "names no file"),
        ("./.", "names no file"),
        ("..", "'..' component"),
        ("../etc/passwd", "'..' component"),
        ("/../../etc/shadow", "'..' component"),
        ("efi/../../x", "'..' component"),
        ("..\\..\\windows\\win.ini", "'..' component"),
        ("a\0b", "NUL"),
        ("a\nb", "control character"),
        ("a\x1bb", "control character"),
        ("a\x7fb", "control character"),
    ],
)
def test_refused_names(requested: str, reason: str) -> None:
    with pytest.raises(RequestPathError, match=reason) as caught:
        normalise_request_path(requested)
    assert caught.value.filename == requested
    assert isinstance(caught.value, ValueError)


@given(st.text(max_size=40))
def test_result_never_escapes_and_is_canonical(filename: str) -> None:
    try:
        path = normalise_request_path(filename)
    except RequestPathError:
        return
    parts = path.split("/")
    assert path and not path.startswith("/") and "\\" not in path
    assert all(part not in ("", ".", "..") for part in parts)
    assert normalise_request_path(path) == path
