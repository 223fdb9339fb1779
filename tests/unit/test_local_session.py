"""partwise_client.sessions: a restarted run continues the session of the run that died."""

import signal
import subprocess
import sys

from partwise_client.sessions import SESSION_ID, local_session


def test_a_run_after_another_continues_its_session(tmp_path):
    with local_session("fp-1", tmp_path) as first:
        pass
    with local_session("fp-1", tmp_path) as again:
        pass

    assert SESSION_ID.fullmatch(first)
    assert again == first


def test_a_run_beside_a_live_one_gets_a_session_of_its_own(tmp_path):
    with local_session("fp-1", tmp_path) as live, local_session("fp-1", tmp_path) as beside:
        assert beside != live
    with local_session("fp-1", tmp_path) as after:
        assert after == live  # the file's kept session is the first run's


def test_other_files_have_other_sessions(tmp_path):
    with local_session("fp-1", tmp_path) as one, local_session("fp-2", tmp_path) as two:
        assert one != two


def test_a_killed_run_leaves_its_session_to_the_next_run(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from partwise_client.sessions import "
            "local_session\n"
            f"with local_session('fp-1', Path({str(tmp_path)!r})) as s:\n"
            "    print(s, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    held = holder.stdout.readline().strip()
    with local_session("fp-1", tmp_path) as while_alive:
        assert while_alive != held  # it still holds the lock: join beside it

    holder.send_signal(signal.SIGKILL)
    holder.wait()

    with local_session("fp-1", tmp_path) as after_kill:
        assert after_kill == held


def test_a_corrupt_session_file_is_replaced(tmp_path):
    with local_session("fp-1", tmp_path) as first:
        pass
    (session_file,) = (tmp_path / "sessions").iterdir()
    session_file.write_bytes(b"\x00not a session\n")

    with local_session("fp-1", tmp_path) as replaced:
        assert replaced != first
        assert SESSION_ID.fullmatch(replaced)
