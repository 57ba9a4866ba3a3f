"""purl_tf: prune Keras networks with reinforcement learning (PuRL)."""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))

# The stack that resolves together (see README, "Installation"). tf-agents
# 0.19 pins typing-extensions==4.5.0 and does not resolve beside TF 2.21.
INSTALL_REQUIRES = [
    'tensorflow==2.21.*',
    'tf-keras==2.21.*',
    'tensorflow-model-optimization==0.8.1',
    'tf-agents==0.18.0',
    'tensorflow-probability==0.22.1',
    'tensorflow-datasets>=4.9,<5',
    'tensorboard==2.21.*',  # tf-agents' DQN training writes tf.summary.
    'absl-py>=1.4',
    'ml-collections>=1.0',
    'numpy>=1.26',
    'matplotlib>=3.8',
    'psutil>=5.9',
]
TEST_REQUIRES = [
    'pytest>=8',
    'pytest-xdist>=3.6',  # tools/test.sh runs the suite on 2 workers.
    'hypothesis>=6.100',
    'tensorflow-serving-api==2.21.*',
]


def _version():
  with open(os.path.join(HERE, 'purl_tf', 'version.py')) as f:
    scope = {}
    exec(f.read(), scope)  # pylint: disable=exec-used
    return scope['__version__']


setuptools.setup(
    name='purl_tf',
    version=_version(),
    description='Prune Keras networks layer by layer with reinforcement '
                'learning (PuRL), with tfmot and tf-agents.',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10,<3.13',
    packages=['purl_tf', 'purl_tf.tools'],
    package_dir={'purl_tf': 'purl_tf', 'purl_tf.tools': 'tools'},
    install_requires=INSTALL_REQUIRES,
    extras_require={'test': TEST_REQUIRES},
    entry_points={'console_scripts': [
        'purl-prune=purl_tf.tools.prune:run',
        'purl-search=purl_tf.tools.search:run',
        'purl-report=purl_tf.tools.report:run',
        'purl-config=purl_tf.tools.config:run',
    ]},
    license='Apache-2.0',
)
