"""The Python package against the library it wraps: training from a dataset
name and from a NumPy array, sampling, likelihoods, saving and loading,
errors as exceptions, arrays checked. Run: make python-test."""
import os
import tempfile
import unittest

import numpy as np

import flowmatch


class FlowmatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fmpy-")
        cls.seen = []
        cls.model = flowmatch.train("moons", iters=1500, seed=0, progress=lambda i, l: cls.seen.append((i, l)),
                                    every=500)

    def test_version_and_methods(self):
        self.assertRegex(flowmatch.version(), r"^\d+\.\d+\.\d+$")
        self.assertTrue({"fm", "ddpm", "score", "nf"} <= set(flowmatch.methods()))

    def test_progress(self):
        self.assertEqual([i for i, _ in self.seen], [500, 1000, 1500])
        self.assertTrue(all(np.isfinite(l) for _, l in self.seen))

    def test_sample_quality_and_determinism(self):
        x = self.model.sample(2000, steps=8, solver="midpoint", seed=1)
        self.assertEqual(x.shape, (2000, 2))
        self.assertEqual(x.dtype, np.float32)
        # moons: x in about [-1, 2], y in about [-0.5, 1]; the mean of the two moons is (0.5, 0.25)
        print(f"\n  sample mean {x.mean(0)} (moons: about [0.5, 0.25])")
        self.assertLess(np.abs(x.mean(0) - [0.5, 0.25]).max(), 0.15)
        np.testing.assert_array_equal(x, self.model.sample(2000, steps=8, solver="midpoint", seed=1))
        self.assertFalse(np.array_equal(x, self.model.sample(2000, steps=8, solver="midpoint", seed=2)))
        self.assertEqual(self.model.sample(10, solver="sde", steps=20).shape, (10, 2))

    def test_log_prob(self):
        on = self.model.log_prob(np.array([[0.0, 1.0], [1.0, -0.5]]))
        off = self.model.log_prob(np.array([[-2.5, -2.5]]))
        print(f"\n  log p on the moons {on}, far away {off}")
        self.assertEqual(on.dtype, np.float64)
        self.assertTrue(np.all(on > off[0] + 3))
        hutch = self.model.log_prob(np.array([[0.0, 1.0]]), probes=64, seed=3)
        self.assertLess(abs(hutch[0] - on[0]), 0.5)

    def test_save_load_roundtrip(self):
        p = os.path.join(self.tmp, "m.safetensors")
        self.model.save(p)
        m2 = flowmatch.load(p)
        self.assertEqual((m2.method, m2.dim, m2.parameters), ("fm", 2, self.model.parameters))
        np.testing.assert_array_equal(m2.sample(100, seed=4), self.model.sample(100, seed=4))
        p2 = os.path.join(self.tmp, "m2.safetensors")
        m2.save(p2)
        with open(p, "rb") as a, open(p2, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_numpy_data_and_other_methods(self):
        rng = np.random.default_rng(0)
        data = rng.normal(size=(2000, 3)) * [1.0, 2.0, 0.5] + [1.0, -1.0, 0.0]
        m = flowmatch.train(data, iters=1500, lr=1e-2)
        x = m.sample(4000, seed=5)
        print(f"\n  a 3-D Gaussian learned from an array: mean {x.mean(0)}, std {x.std(0)}")
        self.assertEqual(x.shape, (4000, 3))
        np.testing.assert_allclose(x.mean(0), [1.0, -1.0, 0.0], atol=0.2)
        np.testing.assert_allclose(x.std(0), [1.0, 2.0, 0.5], rtol=0.25)
        nf = flowmatch.train("moons", method="nf", iters=200, flow_layers=4)
        self.assertEqual(nf.method, "nf")
        self.assertEqual(nf.log_prob(np.zeros((3, 2))).shape, (3,))
        sc = flowmatch.train("moons", method="score", sde="subvp", iters=100)
        self.assertEqual(sc.sample(5, solver="pc", steps=10).shape, (5, 2))
        dd = flowmatch.train("moons", method="ddpm", iters=50, T=100)
        self.assertEqual(dd.sample(5, solver="ddim", steps=10).shape, (5, 2))
        mf = flowmatch.train("moons", method="meanflow", iters=300, ratio_r_neq_t=0.5)
        one = mf.sample(500, steps=1, seed=6)
        self.assertEqual(one.shape, (500, 2))
        print(f"\n  MeanFlow on moons, one jump: mean {one.mean(0)}")
        self.assertLess(np.abs(one.mean(0) - [0.5, 0.25]).max(), 0.5)
        self.assertEqual(mf.sample(5, solver="ode", steps=10).shape, (5, 2))

    def test_batch_against_torchcfm_formulas(self):
        rng = np.random.default_rng(0)
        x0, x1 = rng.standard_normal((128, 3)), rng.standard_normal((128, 3))
        # torchcfm's VariancePreservingConditionalFlowMatcher(sigma=0.1) is the cosine path with sigma 0.1
        t, xt, ut, eps, a0, a1 = flowmatch.batch(x0, x1, seed=5, sigma=0.1, path="cosine")  # any order
        h = np.pi / 2 * t[:, None].astype(np.float64)
        np.testing.assert_allclose(xt, np.cos(h) * a0 + np.sin(h) * a1 + 0.1 * eps, atol=2e-6)
        np.testing.assert_allclose(ut, np.pi / 2 * (np.cos(h) * a1 - np.sin(h) * a0), atol=2e-6)
        np.testing.assert_array_equal(a0, x0.astype(np.float32))
        self.assertTrue(np.all((t > 0) & (t < 1)))
        again = flowmatch.batch(x0, x1, seed=5, path="cosine", sigma=0.1)
        for u, v in zip(again, (t, xt, ut, eps, a0, a1)):
            np.testing.assert_array_equal(u, v)
        # exact OT pairs each point once; a given t is kept
        t2, xt2, ut2, _, b0, b1 = flowmatch.batch(x0, x1, t=0.25, coupling="ot", path="icfm")
        self.assertTrue(np.all(t2 == 0.25))
        self.assertEqual(sorted(map(tuple, b1)), sorted(map(tuple, x1.astype(np.float32))))
        np.testing.assert_allclose(ut2, b1 - b0, atol=1e-6)
        with self.assertRaisesRegex(flowmatch.Error, "sigma > 0"):
            flowmatch.batch(x0, x1, coupling="sb", path="sb", sigma=0)
        _, _, _, _, s0, s1 = flowmatch.batch(x0, x1, coupling="sb")  # the sb path by itself
        self.assertTrue(all(any(np.array_equal(r, q) for q in x1.astype(np.float32)) for r in s1))

    def test_schedule_transformation(self):
        a = self.model.sample(2000, steps=20, solver="heun3", seed=1)
        b = self.model.sample(2000, steps=20, solver="heun3", seed=1, schedule="cosine")
        print(f"\n  ot model along its own path and the cosine path: mean {a.mean(0)} and {b.mean(0)}")
        self.assertLess(np.abs(a.mean(0) - b.mean(0)).max(), 0.05)
        np.testing.assert_array_equal(a, self.model.sample(2000, steps=20, solver="heun3", seed=1))
        with self.assertRaisesRegex(flowmatch.Error, "unknown path"):
            self.model.sample(5, schedule="nope")

    def test_errors(self):
        with self.assertRaisesRegex(flowmatch.Error, "lr"):
            flowmatch.train("moons", iters=5, lr="fast")
        with self.assertRaisesRegex(flowmatch.Error, "no setting 'nonsense'"):
            flowmatch.train("moons", iters=5, nonsense=1)
        with self.assertRaisesRegex(flowmatch.Error, "unknown method"):
            flowmatch.train("moons", method="magic", iters=5)
        with self.assertRaisesRegex(flowmatch.Error, "nope"):
            flowmatch.train("nope", iters=5)
        with self.assertRaisesRegex(flowmatch.Error, "No such file|cannot|not"):
            flowmatch._load_handle(os.path.join(self.tmp, "missing.safetensors"))
        with self.assertRaises(ValueError):
            self.model.log_prob(np.zeros((4, 3)))  # wrong dimension
        with self.assertRaises(ValueError):
            self.model.log_prob(np.array([[np.nan, 0.0]]))
        with self.assertRaises(ValueError):
            flowmatch.train(np.zeros(10), iters=5)  # not 2-D
        with self.assertRaises(ValueError):
            self.model.sample(0)
        with self.assertRaisesRegex(flowmatch.Error, "bogus"):
            self.model.sample(5, solver="bogus")


if __name__ == "__main__":
    unittest.main()
