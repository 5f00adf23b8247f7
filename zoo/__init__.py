"""Model zoo: reversible versions of the papers' networks and families.

Every constructor takes ``num_classes``, ``input_shape`` and the reversal
settings of ``keras_reversible.ReversibleModel``, and returns a model ready to
``compile``.

Example:

```python
import zoo
print(zoo.list_models())
model = zoo.get("racecar_mnist_cnn", depth=3)
```
"""

from zoo.racecar import racecar_mi_net, racecar_mnist_cnn
from zoo.registry import ModelInfo, get, info, list_models

__all__ = ["ModelInfo", "get", "info", "list_models", "racecar_mi_net", "racecar_mnist_cnn"]
