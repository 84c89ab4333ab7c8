"""mlcd: continuous delivery of machine-learning models on Luigi.

The library holds plain functions (no scheduler needed); the Luigi tasks live in the ``tasks``
package and call into it.
"""

__version__ = "0.1.0"
