"""One task of the demo sweep: 5-fold cross-validated accuracy of an RBF SVM (scikit-learn SVC) on the
UCI handwritten digits dataset that ships inside scikit-learn (load_digits: 1,797 8x8 images, 10 classes).

Parameters come from the job spec as environment variables DEQO_PARAM_C and DEQO_PARAM_GAMMA; the result
is written to /outputs/result.json and echoed on stdout. Everything is deterministic (no shuffling, one
process), so honest providers produce byte-identical results and the same result hash.
"""
import json
import os

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC

C = float(os.environ["DEQO_PARAM_C"])
gamma = float(os.environ["DEQO_PARAM_GAMMA"])
X, y = load_digits(return_X_y=True)
scores = cross_val_score(SVC(C=C, gamma=gamma), X, y, cv=5, n_jobs=1)
result = {
    "C": C,
    "gamma": gamma,
    "accuracy": round(float(scores.mean()), 6),
    "folds": [round(float(s), 6) for s in scores],
    "samples": int(X.shape[0]),
}
out_dir = os.environ.get("DEQO_OUTPUT_DIR", "/outputs")
with open(os.path.join(out_dir, "result.json"), "w") as f:
    json.dump(result, f, sort_keys=True)
print(json.dumps(result, sort_keys=True))
