// Interventions in the window: the dialog checks what is typed against the open model and
// saves and loads files atomically, the Compare view's effect panel shows the numbers of
// mythos::interventionEffect, and a variant with "intervene" runs the modified model next to
// the original at the shared loop count.
#include <QDir>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "barchart.h"
#include "comparisonview.h"
#include "interventiondialog.h"
#include "interventioneffect.h"
#include "mainwindow.h"
#include "mythos/intervention.h"
#include "mythos/model.h"
#include "qtest_main.h"

using namespace mx;

namespace {

const QString kModel = QStringLiteral(MYTHOS_SOURCE_DIR "/resources/models/demo_mla");

TracePtr runOf(mythos::Model& m, int loops) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 12; ++i)
        ids.push_back((i * 5 + 1) % int(m.config().vocab_size));
    auto run = m.deepRun(ids, 1, int64_t(ids.size()), loops);
    auto tr = std::make_shared<mythos::Trace>();
    m.logitsAt(run, loops, tr.get());
    return tr;
}

} // namespace

class TestIntervention : public QObject {
    Q_OBJECT
private slots:
    void init() {
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
    }

    void dialogChecksAgainstTheModelAndSavesAtomically() {
        auto model = mythos::Model::open(kModel.toStdString());
        InterventionDialog d(model->config());
        auto* status = d.findChild<QLabel*>("interventionStatus");
        QVERIFY(status);
        // The template is valid and changes nothing: nothing to compare yet.
        QVERIFY(d.valid());
        QVERIFY(status->text().contains("nothing"));
        // An expert the model does not have: invalid, said with the field.
        d.setText(R"({"ablate_experts": [{"expert": 99}]})");
        QString error;
        QVERIFY(!d.valid(&error));
        QVERIFY2(error.contains("expert 99"), qPrintable(error));
        QVERIFY(status->text().contains("expert 99"));
        d.setText("{not json");
        QVERIFY(!d.valid(&error));
        QVERIFY(error.contains("JSON"));
        // A valid one: its compact JSON parses back to the same intervention.
        d.setText(R"({"name": "x", "ablate_experts": [{"expert": 1, "loop": 2}], "lora_scale_zero": true})");
        QVERIFY(d.valid());
        QVERIFY(status->text().contains("ablate expert 1 at loop 2"));
        const auto iv = mythos::interventionFromJson(nlohmann::json::parse(d.json().toStdString()));
        QCOMPARE(iv.ablateExperts.size(), std::size_t(1));
        QVERIFY(iv.loraScaleZero);

        // Save and load: the file holds the intervention; an invalid text is not saved.
        QTemporaryDir dir;
        const QString path = dir.filePath("iv.json");
        QVERIFY(d.saveFile(path, &error));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"iv.json"}); // no temporary left
        const auto loaded = mythos::loadIntervention(path.toStdString());
        QCOMPARE(loaded.describe(), iv.describe());
        d.setText(R"({"ablate_heads": [{"head": 77}]})");
        QVERIFY(!d.saveFile(path, &error));
        QCOMPARE(mythos::loadIntervention(path.toStdString()).describe(), iv.describe()); // untouched
        QVERIFY(d.loadFile(path, &error));
        QVERIFY(d.valid());
        QVERIFY(d.text().contains("\"lora_scale_zero\": true"));
        QVERIFY(!d.loadFile(dir.filePath("missing.json"), &error));
        QVERIFY(error.contains("missing.json"));
    }

    void effectPanelShowsTheEngineNumbers() {
        auto base = mythos::Model::open(kModel.toStdString());
        auto modified = mythos::Model::open(kModel.toStdString());
        modified->setIntervention(
            mythos::interventionFromJson(nlohmann::json::parse(R"({"ablate_experts": [{"expert": 0}]})")));
        const TracePtr a = runOf(*base, 6), b = runOf(*modified, 6);
        InterventionEffectPanel p;
        p.resize(900, 400);
        QVERIFY(p.setTraces(a, b));
        const auto want = mythos::interventionEffect(*a, *b);
        QCOMPARE(p.effect().changedTop1, want.changedTop1);
        QCOMPARE(p.routingChart()->categories().size(), int(a->seqLen));
        QVERIFY(p.summary().contains("ablate expert 0"));
        QVERIFY(p.summary().contains(QString("%1 of %2").arg(want.changedTop1).arg(a->seqLen)));
        const DataTable t = p.data();
        QCOMPARE(t.rows.size(), int(a->seqLen));
        QCOMPARE(t.rows[3][6].toDouble(), want.routingChanged[3]);
        // Ablating expert 0 everywhere changes which experts some token's loops select.
        double routing = 0;
        for (double r : want.routingChanged)
            routing += r;
        QVERIFY(routing > 0);
        // Two unmodified runs are no intervention: nothing is shown.
        QVERIFY(!p.setTraces(a, runOf(*base, 6)));
        QVERIFY(p.routingChart()->categories().isEmpty());
    }

    void windowComparesWithAnIntervention() {
        MainWindow win;
        win.setInteractive(false);
        win.resize(1280, 900);
        win.show();
        QSignalSpy ready(&win, &MainWindow::modelReady);
        {
            const QSignalBlocker blocker(&win);
            win.setPrompt("a=3;b=a;?b");
        }
        win.openModel(kModel);
        QVERIFY(waitForSignal(ready, 60000));
        QSignalSpy cmpReady(&win, &MainWindow::compareModelReady);
        win.openCompareVariant(R"({"intervene": {"injection_off_after": 0, "lora_scale_zero": true}})");
        QVERIFY(waitForSignal(cmpReady, 60000));
        QVERIFY(win.compareInfo()->displayName.contains("no re-injection"));
        QVERIFY(QTest::qWaitFor([&] { return win.comparisonView()->comparable(); }, 60000));
        const TracePtr b = win.comparisonView()->traceB();
        QVERIFY(!b->intervention.is_null());
        QVERIFY(win.currentTrace()->intervention.is_null());
        auto* effect = win.comparisonView()->interventionEffect();
        QVERIFY(!effect->isHidden());
        QVERIFY(effect->summary().contains("no re-injection after loop 0"));
        bool exported = false;
        for (const auto& c : win.comparisonView()->charts())
            exported |= c.id == "compare-intervention";
        QVERIFY(exported);
        // A bad intervention is refused with the field named; the comparison stays.
        QSignalSpy failed(&win, &MainWindow::compareFailed);
        win.openCompareVariant(R"({"intervene": {"ablate_experts": [{"expert": 50}]}})");
        QVERIFY(waitForSignal(failed, 60000));
        QVERIFY2(failed.first().first().toString().contains("expert 50"),
                 qPrintable(failed.first().first().toString()));
        QVERIFY(win.compareInfo());
    }
};

MX_QTEST_MAIN(TestIntervention)
#include "test_intervention.moc"
