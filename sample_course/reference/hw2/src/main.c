#include <stdio.h>

#include "rpn.h"

/* Reads one expression per line and prints its value or an error message. */
int main(void)
{
    char line[1024];

    while (fgets(line, sizeof line, stdin) != NULL) {
        long value;
        enum rpn_status status = rpn_eval(line, &value);

        if (status == RPN_OK)
            printf("%ld\n", value);
        else if (status != RPN_EMPTY)
            printf("error: %s\n", rpn_message(status));
    }
    return 0;
}
