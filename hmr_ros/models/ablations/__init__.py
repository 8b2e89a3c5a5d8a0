"""The paper's ablation baselines (HMR-Adapter Tables 3-6), compared with the adapters."""
