"""purl_tf: prune Keras networks layer by layer with reinforcement learning.

Importing purl_tf selects Keras 2 (`TF_USE_LEGACY_KERAS=1`) before TensorFlow
loads; see `purl_tf.compat`.
"""

from purl_tf import compat as _compat  # pylint: disable=unused-import
from purl_tf.version import __version__
