#pragma once
// Every chart the views use: the hand-painted bar chart, the line and scatter charts over
// Qt Charts, and the shared palette.
#include "barchart.h"
#include "chartadapter.h"
#include "palette.h"
