"""The storage package never imports torch (the studio's persistence must stay light)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_storage_does_not_import_torch(child_env: dict) -> None:
    code = (
        "import sys\n"
        "import storage, storage.cli, storage.exports, storage.backup, storage.bench\n"
        "from storage.remotes import HubRemote\n"
        "HubRemote('lab/backup')\n"  # also pulls in huggingface_hub
        "assert 'storage' in sys.modules\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
