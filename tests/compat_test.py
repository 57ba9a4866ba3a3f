"""Tests for purl_tf.compat: Keras 2 is selected, TensorFlow starts quietly."""

import os
import subprocess
import sys

from purl_tf import compat

# What TensorFlow 2.21 writes to stderr on a CPU machine without a CUDA
# driver, before absl logging is initialised (shortened).
_STARTUP = (
    'WARNING: All log messages before absl::InitializeLog() is called are '
    'written to STDERR\n'
    'I0000 00:00:1795577505.951491   10965 port.cc:153] oneDNN custom '
    'operations are on.\n'
    'I0000 00:00:1795577505.951861   10965 cudart_stub.cc:31] Could not find '
    'cuda drivers on your machine, GPU will not be used.\n'
    'I0000 00:00:1795577507.943459   10965 cpu_feature_guard.cc:227] This '
    'TensorFlow binary is optimized.\n'
    'To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n'
    'W0000 00:00:1795577508.000000   10965 some.cc:1] a warning\n'
    'E0000 00:00:1795577509.528400   10965 cuda_platform.cc:52] failed call to '
    'cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)\n'
    'E0000 00:00:1795577509.600000   10965 other.cc:9] a real error\n'
    '/x.py:3: DeprecationWarning: a Python warning\n')


def testStartupLog_Level2_KeepsOnlyRealErrorsAndPythonWarnings():
  out = compat._filter_startup_log(_STARTUP, 2)
  assert out == ('E0000 00:00:1795577509.600000   10965 other.cc:9] a real '
                 'error\n/x.py:3: DeprecationWarning: a Python warning\n')


def testStartupLog_Level0_KeepsInfoButNotTheBannerOrDriverlessCuInit():
  out = compat._filter_startup_log(_STARTUP, 0)
  assert 'absl::InitializeLog' not in out
  assert 'cuInit' not in out
  assert 'oneDNN' in out and 'To enable the following' in out
  assert 'a warning' in out and 'a real error' in out


def testStartupLog_CuInitFailsWithADriverInstalled_IsKept():
  text = ('E0000 00:00:1.0   1 cuda_platform.cc:52] failed call to cuInit: '
          'CUDA_ERROR_NO_DEVICE\n')
  assert compat._filter_startup_log(text, 2) == text


def testImportPurlTf_OnThisMachine_WritesNothingToStderr():
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  env.pop('PURL_TF_STARTUP_LOG', None)
  proc = subprocess.run([sys.executable, '-c', 'import purl_tf'], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=True)
  assert proc.stderr == ''


def testImportPurlTf_StartupLogVariable_ShowsTensorFlowsLinesUnfiltered():
  env = dict(os.environ, PURL_TF_STARTUP_LOG='1', TF_CPP_MIN_LOG_LEVEL='0')
  proc = subprocess.run([sys.executable, '-c', 'import purl_tf'], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=True)
  assert 'I0000' in proc.stderr or 'W0000' in proc.stderr
