"""The paper's own figures (Perrett & Damen 2019, Tables 1 and 2, as transcribed in SPEC.md 5), keyed
by the dataset names of `config/paper.yaml`: breakfast, 50salads, mpii. Accuracy %, (D1, D2)."""

PAPER_TABLE1 = {
    ("50salads", "mpii"): {
        "Single, None": (41.1, 38.3), "Joint, LSTM": (41.6, 39.0), "Joint, BNLSTM": (32.4, 22.6),
        "D1,D2, LSTM": (4.4, 38.7), "D2,D1, LSTM": (43.0, 0.0), "Joint, DDLSTM": (47.1, 41.5),
    },
    ("breakfast", "50salads"): {
        "Single, None": (24.5, 41.1), "Joint, LSTM": (24.7, 40.5), "Joint, BNLSTM": (18.4, 37.0),
        "D1,D2, LSTM": (0.0, 42.5), "D2,D1, LSTM": (25.4, 8.5), "Joint, DDLSTM": (29.1, 46.3),
    },
    ("breakfast", "mpii"): {
        "Single, None": (24.5, 38.3), "Joint, LSTM": (26.3, 38.8), "Joint, BNLSTM": (22.5, 30.9),
        "D1,D2, LSTM": (0.0, 39.1), "D2,D1, LSTM": (25.3, 1.0), "Joint, DDLSTM": (30.5, 40.1),
    },
}

PAPER_TABLE2 = {
    ("50salads", "mpii"): {1: (45.7, 41.3), 2: (46.6, 41.0), 3: (47.1, 41.5), 4: (46.1, 40.6), 5: (41.0, 40.3),
                           10: (39.7, 38.0)},
    ("breakfast", "50salads"): {1: (28.4, 45.0), 2: (29.0, 45.2), 3: (29.1, 46.3), 4: (28.6, 44.3), 5: (29.0, 46.0),
                                10: (25.5, 40.7)},
    ("breakfast", "mpii"): {1: (29.2, 40.8), 2: (29.9, 40.1), 3: (30.5, 40.1), 4: (30.5, 38.8), 5: (30.3, 38.4),
                            10: (28.1, 35.6)},
}
